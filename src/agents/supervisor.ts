/**
 * One agent's supervisor: the state machine that brings one agent to its desired spec and
 * keeps it there. It owns the agent's operation queue, its timers (reconcile interval,
 * retry, governor wait) and its backoff; the manager only wires supervisors to the desired
 * state.
 *
 * States and transitions (every `desire`, `remove` and timer goes through the queue, so one
 * operation runs at a time; `desire` and `remove` first cancel every pending timer and
 * bump a generation counter, and an operation that finds the generation moved after an
 * await discards its result):
 *
 * ```
 * idle ─desire→ downloading ─bytes→ loading ─mr_init ok→ running
 *                  │ transient error          │ error
 *                  └────────→ backoff ←───────┘ (permanent error → rejected)
 * running ─call fails→ backoff ─timer→ downloading
 * running ─desire(new)→ [rollout: waiting_governor ─slot→] swapping ─ok→ running (new)
 *                                                             └─fails→ running (old)
 * any ─remove→ removing ─mr_shutdown→ stopped
 * ```
 *
 * @module
 */
import type { AgentSpec } from "../desired/spec.ts";
import type { AgentPlugin } from "../plugins/types.ts";
import { parseDuration } from "../util/duration.ts";
import { Backoff, jittered } from "../util/backoff.ts";
import type { TimerHandle } from "../util/clock.ts";
import { AgentCallError, errorInfo, isPermanentStartError } from "./errors.ts";
import { closeInstance, initInstance, reconcileInput } from "./instance.ts";
import type { SupervisorDeps, SupervisorSnapshot, SupervisorState } from "./supervisor_types.ts";

export type {
  SupervisorClock,
  SupervisorDeps,
  SupervisorGovernor,
  SupervisorSnapshot,
  SupervisorState,
} from "./supervisor_types.ts";

const DEFAULT_INTERVAL_MS = 30_000;
const MIN_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 60_000;
/** Governor retry: a full governor is polled (try-once) so a new spec cancels the wait. */
const GOVERNOR_RETRY_MS = 2_000;

const keyOf = (spec: AgentSpec) => JSON.stringify(spec);

interface Current {
  spec: AgentSpec;
  key: string;
  plugin: AgentPlugin;
}

/** Supervises one agent. */
export class AgentSupervisor {
  #d: SupervisorDeps;
  #state: SupervisorState = "idle";
  #desired: AgentSpec | null = null;
  #current: Current | null = null;
  /** The spec a swap replaced (auto-rollback goes back to it). */
  #previous: AgentSpec | null = null;
  #gen = 0;
  #chain: Promise<void> = Promise.resolve();
  #retry: TimerHandle | undefined;
  #interval: TimerHandle | undefined;
  #backoff: Backoff;
  #intervalQueued = false;
  #removal: Promise<void> | null = null;
  /** The version an auto-rollback went back to: started again if it is lost. */
  #fallback: AgentSpec | null = null;
  #refused = new Map<string, { kind: "policy" | "refused"; why: string }>();
  #held: string | null = null;
  #restarts = 0;
  #runs = 0;
  #lastResult: unknown = null;
  #lastRun: string | null = null;
  #lastError: string | null = null;
  #version: number | null = null;
  #listeners = new Set<(s: SupervisorState) => void>();

  constructor(deps: SupervisorDeps) {
    this.#d = deps;
    this.#backoff = new Backoff({
      minMs: MIN_BACKOFF_MS,
      maxMs: MAX_BACKOFF_MS,
      ...(deps.random ? { random: deps.random } : {}),
    });
  }

  /** The current state. */
  get state(): SupervisorState {
    return this.#state;
  }

  /** The spec running now, if any. */
  get running(): AgentSpec | null {
    return this.#current?.spec ?? null;
  }

  /** Called on every state change (tests, health). */
  onState(fn: (s: SupervisorState) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * Wants `spec` to run. Cancels any pending retry, backoff or governor wait, and discards
   * the result of an operation in flight for an older spec.
   */
  desire(spec: AgentSpec): Promise<void> {
    if (this.#state === "removing" || this.#state === "stopped") return Promise.resolve();
    const gen = this.#bump();
    if (this.#desired && keyOf(this.#desired) !== keyOf(spec)) this.#fallback = null;
    this.#desired = spec;
    return this.#enqueue(() => this.#converge(gen));
  }

  /**
   * Starts `spec` as what ran before a restart (`running.json`). Unlike `desire`, a later
   * `desire` does not discard this start: a desired version that cannot run must never
   * replace the version that ran, so it swaps from it.
   */
  resume(spec: AgentSpec): Promise<void> {
    if (this.#state !== "idle") return Promise.resolve();
    this.#desired ??= spec;
    return this.#enqueue(async () => {
      if (this.#current || this.#state === "removing" || this.#state === "stopped") return;
      try {
        this.#d.admit?.(spec);
      } catch {
        return; // the desired state's converge reports the refusal
      }
      await this.#start(spec, keyOf(spec), null);
    });
  }

  /** Local policy changed: forget policy refusals and re-check the running spec. */
  recheck(): Promise<void> {
    for (const [k, v] of this.#refused) if (v.kind === "policy") this.#refused.delete(k);
    return this.#desired ? this.desire(this.#desired) : Promise.resolve();
  }

  /** Runs `mr_reconcile` now (an `on_change` trigger) if the agent is running. */
  trigger(kind: string): Promise<void> {
    return this.#enqueue(() => this.#reconcile(kind).then(() => {}));
  }

  /** Stops the agent (`mr_shutdown`) after the operation in flight; emits `event`. */
  remove(reason: string, event: "stopped" | "removed" = "stopped"): Promise<void> {
    if (this.#state === "stopped") return Promise.resolve();
    if (this.#removal) return this.#removal;
    this.#bump();
    this.#set("removing");
    return this.#removal = this.#enqueue(async () => {
      this.#d.clock.clearTimeout(this.#interval);
      const cur = this.#current;
      this.#current = null;
      if (cur) await this.#close(cur.plugin);
      const spec = cur?.spec ?? this.#desired;
      this.#set("stopped");
      if (spec) {
        this.#d.emit(event, { reason, sha256: spec.wasm.sha256, version: this.#version });
      }
      this.#d.changed();
    });
  }

  /** Calls `mr_command` on the running version (queued behind other operations). */
  invoke(command: string, args: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#enqueue(async () => {
        const cur = this.#current;
        if (!cur || !this.#runningLike()) {
          reject(
            new AgentCallError("not_found", `agent "${this.#d.name}" is not running on this node`),
          );
          return;
        }
        if (!cur.plugin.has("mr_command")) {
          reject(
            new AgentCallError("unsupported", `agent "${this.#d.name}" does not export mr_command`),
          );
          return;
        }
        try {
          resolve(await cur.plugin.callJson("mr_command", { command, args }));
        } catch (err) {
          resolve({ error: errorInfo(err) });
        }
      });
    });
  }

  /** Resolves when every queued operation so far has finished. */
  idle(): Promise<void> {
    return this.#chain;
  }

  /** A read-only view. */
  snapshot(): SupervisorSnapshot {
    return {
      name: this.#d.name,
      state: this.#state,
      spec: this.#current?.spec ?? this.#desired,
      desired: this.#desired,
      version: this.#version,
      restarts: this.#restarts,
      runs: this.#runs,
      last_result: this.#lastResult,
      last_run: this.#lastRun,
      last_error: this.#lastError,
      held: this.#held,
    };
  }

  // --- internals ---

  #bump(): number {
    this.#d.clock.clearTimeout(this.#retry);
    this.#retry = undefined;
    return ++this.#gen;
  }

  #set(s: SupervisorState) {
    if (this.#state === s) return;
    this.#state = s;
    for (const l of this.#listeners) l(s);
  }

  #runningLike(): boolean {
    return this.#state === "running" || this.#state === "waiting_governor" ||
      this.#state === "swapping";
  }

  #enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(fn).catch((err) => {
      this.#d.logger.error("agent operation failed", {
        agent: this.#d.name,
        error: String(err),
      });
    });
    this.#chain = next;
    return next;
  }

  #later(gen: number, ms: number) {
    this.#d.clock.clearTimeout(this.#retry);
    this.#retry = this.#d.clock.setTimeout(() => {
      this.#retry = undefined;
      if (gen !== this.#gen) return;
      this.#enqueue(() => this.#converge(gen));
    }, ms);
  }

  #backoffMs(): number {
    return this.#backoff.next();
  }

  #close(plugin: AgentPlugin): Promise<void> {
    return closeInstance(plugin, this.#d.logger, this.#d.name);
  }

  /** Download + load + mr_init; the new plugin, or throws (tagged with the phase). */
  async #instantiate(
    spec: AgentSpec,
    gen: number | null,
    starting: boolean,
  ): Promise<AgentPlugin | null> {
    const stale = () => gen !== null && gen !== this.#gen;
    if (starting) this.#set("downloading");
    const bytes = await this.#d.fetch(spec);
    if (stale()) return null;
    if (starting) this.#set("loading");
    const plugin = await this.#d.load(spec, bytes);
    if (stale()) {
      await plugin.close().catch(() => {});
      return null;
    }
    await initInstance(plugin, spec);
    if (stale()) {
      await this.#close(plugin);
      return null;
    }
    return plugin;
  }

  #refuse(spec: AgentSpec, err: unknown, phase: string): boolean {
    const e = errorInfo(err);
    const permanent = isPermanentStartError(err);
    this.#lastError = `${e.code}: ${e.message}`;
    if (permanent) {
      const policy = e.code === "local_policy";
      this.#refused.set(keyOf(spec), { kind: policy ? "policy" : "refused", why: e.code });
      this.#d.emit("rejected", {
        code: e.code,
        reason: e.message,
        sha256: spec.wasm.sha256,
        ...((err as { rule?: string }).rule ? { rule: (err as { rule?: string }).rule } : {}),
      });
    } else {
      this.#d.emit("failed", { phase, code: e.code, error: e.message, sha256: spec.wasm.sha256 });
    }
    return permanent;
  }

  async #converge(gen: number): Promise<void> {
    if (gen !== this.#gen) return;
    const spec = this.#desired;
    if (!spec || this.#state === "removing" || this.#state === "stopped") return;
    const key = keyOf(spec);
    try {
      this.#d.admit?.(spec);
    } catch (err) {
      this.#held = "local_policy";
      if (!this.#refused.has(key)) this.#refuse(spec, err, "policy");
      const cur = this.#current;
      if (cur) {
        // the host owner's policy wins over a spec already running
        this.#d.clock.clearTimeout(this.#interval);
        this.#current = null;
        await this.#close(cur.plugin);
        this.#d.emit("stopped", { reason: "local_policy", sha256: cur.spec.wasm.sha256 });
        this.#d.changed();
      }
      this.#set("rejected");
      return;
    }
    if (this.#current?.key === key) {
      // already there (a stale retry or swap for an older spec has nothing to do)
      this.#held = null;
      this.#set("running");
      return;
    }
    const refused = this.#refused.get(key);
    if (refused) {
      this.#held = refused.why;
      if (!this.#current && this.#fallback) {
        // the rolled-back-to version failed to start: keep trying it, not the refused one
        await this.#start(this.#fallback, keyOf(this.#fallback), gen);
        return;
      }
      this.#set(this.#current ? "running" : "rejected");
      return;
    }
    if (!this.#current) await this.#start(spec, key, gen);
    else await this.#swap(spec, key, gen);
  }

  /** Starts `spec` with nothing running; `gen` `null`: not discarded by a newer desire. */
  async #start(spec: AgentSpec, key: string, gen: number | null): Promise<void> {
    let plugin: AgentPlugin | null;
    try {
      plugin = await this.#instantiate(spec, gen, true);
    } catch (err) {
      if (gen !== null && gen !== this.#gen) return;
      const phase = (err as { phase?: string }).phase ?? "start";
      const permanent = this.#refuse(spec, err, phase);
      await this.#d.rollout?.record(spec, null, "failed", errorInfo(err).code);
      if (permanent) this.#set("rejected");
      else {
        this.#set("backoff");
        this.#later(gen ?? this.#gen, this.#backoffMs());
      }
      return;
    }
    if (!plugin) return;
    this.#current = { spec, key, plugin };
    this.#held = null;
    this.#lastError = null;
    this.#version = this.#d.version?.() ?? null;
    this.#set("running");
    this.#d.emit("started", {
      sha256: spec.wasm.sha256,
      size: spec.wasm.size,
      version: this.#version,
    });
    this.#schedule(spec);
    this.#d.changed();
    const ok = await this.#reconcile("start");
    if (ok) await this.#d.rollout?.record(spec, null, "healthy");
  }

  async #swap(spec: AgentSpec, key: string, gen: number): Promise<void> {
    const cur = this.#current!;
    const gate = spec.rollout ? this.#d.rollout : undefined;
    const gov = spec.rollout ? this.#d.governor?.() : undefined;
    const owner = this.#d.owner ?? this.#d.name;
    if (gate && (await gate.check(spec)) === "halted") {
      this.#held = "rollout_halted";
      this.#set("running");
      return;
    }
    if (gov && spec.rollout) {
      this.#set("waiting_governor");
      const slot = await gov.acquire(spec.rollout.governor, {
        owner,
        capacity: spec.rollout.capacity,
        timeoutMs: 0,
      }).catch(() => ({ held: false }));
      if (!slot.held || gen !== this.#gen) {
        if (slot.held) await gov.release(spec.rollout.governor, owner).catch(() => {});
        if (gen === this.#gen) this.#later(gen, this.#jitter(GOVERNOR_RETRY_MS));
        return;
      }
    }
    try {
      const decision = gate ? await gate.check(spec) : "go";
      if (decision !== "go") {
        // failures arrived while this node waited for its slot, or may still arrive
        this.#held = decision === "halted" ? "rollout_halted" : "rollout_waiting";
        this.#set("running");
        if (decision === "wait") this.#later(gen, this.#jitter(GOVERNOR_RETRY_MS));
        return;
      }
      if (gate && !(await gate.record(spec, cur.spec.wasm.sha256, "started"))) {
        // the other nodes could not count this one in flight: ask again later
        this.#held = "rollout_waiting";
        this.#set("running");
        this.#later(gen, this.#jitter(GOVERNOR_RETRY_MS));
        return;
      }
      this.#set("swapping");
      let plugin: AgentPlugin | null;
      try {
        plugin = await this.#instantiate(spec, gen, false);
      } catch (err) {
        this.#set("running");
        if (gen !== this.#gen) return;
        const permanent = this.#refuse(spec, err, (err as { phase?: string }).phase ?? "start");
        await gate?.record(spec, cur.spec.wasm.sha256, "failed", errorInfo(err).code);
        if (permanent) this.#held = errorInfo(err).code;
        else if (!gate) this.#later(gen, this.#backoffMs());
        else {
          // a rollout does not retry a failed version on its own: it would count twice
          this.#refused.set(key, { kind: "refused", why: errorInfo(err).code });
          this.#held = errorInfo(err).code;
        }
        return;
      }
      if (!plugin) {
        this.#set("running");
        return;
      }
      this.#d.clock.clearTimeout(this.#interval);
      this.#previous = cur.spec;
      this.#current = { spec, key, plugin };
      this.#held = null;
      this.#lastError = null;
      this.#version = this.#d.version?.() ?? null;
      this.#set("running");
      await this.#close(cur.plugin);
      this.#d.emit("updated", {
        from: cur.spec.wasm.sha256,
        to: spec.wasm.sha256,
        version: this.#version,
      });
      this.#schedule(spec);
      this.#d.changed();
      const ok = await this.#reconcile("start", { rollback: !!spec.rollout?.auto_rollback });
      if (ok) await gate?.record(spec, this.#previous.wasm.sha256, "healthy");
    } finally {
      if (gov && spec.rollout) await gov.release(spec.rollout.governor, owner).catch(() => {});
    }
  }

  #jitter(ms: number): number {
    return jittered(ms, this.#d.random ? { random: this.#d.random } : {});
  }

  #schedule(spec: AgentSpec) {
    const every = spec.triggers.interval
      ? parseDuration(spec.triggers.interval)
      : DEFAULT_INTERVAL_MS;
    const tick = () => {
      this.#interval = this.#d.clock.setTimeout(() => {
        if (this.#state === "removing" || this.#state === "stopped" || !this.#current) return;
        // a call slower than the interval does not pile up queued calls behind it
        if (!this.#intervalQueued) {
          this.#intervalQueued = true;
          this.#enqueue(() => {
            this.#intervalQueued = false;
            return this.#reconcile("interval").then(() => {});
          });
        }
        tick();
      }, every);
    };
    this.#d.clock.clearTimeout(this.#interval);
    tick();
  }

  /** One `mr_reconcile`; on failure the instance is closed and restarted after a backoff. */
  async #reconcile(kind: string, o: { rollback?: boolean } = {}): Promise<boolean> {
    const cur = this.#current;
    if (!cur || !this.#runningLike()) return false;
    if (!cur.plugin.has("mr_reconcile")) return true;
    const spec = cur.spec;
    try {
      const result = await cur.plugin.callJson(
        "mr_reconcile",
        reconcileInput(spec, this.#d.facts, {
          lastResult: this.#lastResult,
          runs: this.#runs,
          lastRun: this.#lastRun,
          kind,
          now: this.#d.clock.now(),
        }),
      );
      this.#runs++;
      this.#lastResult = result;
      this.#lastRun = new Date(this.#d.clock.now()).toISOString();
      this.#lastError = null;
      this.#backoff.reset();
      return true;
    } catch (err) {
      const e = errorInfo(err);
      this.#lastError = `${e.code}: ${e.message}`;
      this.#d.logger.warn("agent call failed", { agent: this.#d.name, ...e });
      this.#d.emit("failed", {
        phase: "reconcile",
        code: e.code,
        error: e.message,
        sha256: spec.wasm.sha256,
      });
      if (this.#state === "removing" || this.#state === "stopped") return false;
      this.#d.clock.clearTimeout(this.#interval);
      this.#current = null;
      await this.#close(cur.plugin);
      const gen = this.#gen;
      if (o.rollback && this.#previous && this.#d.rollout) {
        // the new version failed its first run: record it and go back to the old hash
        await this.#d.rollout.record(spec, this.#previous.wasm.sha256, "failed", e.code);
        this.#refused.set(cur.key, { kind: "refused", why: "rolled_back" });
        this.#held = "rolled_back";
        const back = this.#previous;
        this.#fallback = back;
        this.#d.emit("rolled_back", { from: spec.wasm.sha256, to: back.wasm.sha256 });
        await this.#start(back, keyOf(back), gen);
        return false;
      }
      this.#restarts++;
      this.#set("backoff");
      this.#later(gen, this.#backoffMs());
      return false;
    }
  }
}
