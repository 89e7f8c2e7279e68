/**
 * The agent manager (daemon module `agents`): runs the agents of the effective desired
 * state in one shared sandbox.
 *
 * - Runs only the agents whose `match` holds against this node's facts (re-evaluated when
 *   facts change) and, for `leader_only`, only while this node leads its site.
 * - Start: download by hash (`src/artifacts`), load with the agent's grants and limits,
 *   `mr_init(config)`, then `mr_reconcile({desired, facts, state, trigger})` at once and
 *   every `triggers.interval` (default 30 s), and on spec/facts changes when `on_change`.
 * - Hot-swap: a new hash (or changed grants/limits/config) is loaded and initialised beside
 *   the running version; only when that succeeds is the old one shut down (`mr_shutdown`)
 *   and replaced (`agent.v1.updated`). On failure the old version keeps running
 *   (`agent.v1.failed`). With `rollout: {governor, capacity}` the swap happens only while
 *   holding a slot of that governor.
 * - A failing agent (trap, fuel, timeout, error) is reported (`agent.v1.failed`) and
 *   restarted with jittered backoff; it never affects the others.
 * - Refused modules (download/verify/load errors) give `agent.v1.rejected`.
 * - Commands: `agents` (list) and `invoke` (`{agent, command, args}` → `mr_command`).
 *
 * @module
 */
import { join } from "node:path";
import { CommandError } from "../commands/mod.ts";
import type {
  CommandHandler,
  DaemonContext,
  DaemonModule,
  ElectionModule,
  GovernorModule,
} from "../daemon/types.ts";
import { ArtifactError, type ArtifactStore, createArtifactStore } from "../artifacts/mod.ts";
import { matches } from "../desired/match.ts";
import type { AgentSpec } from "../desired/spec.ts";
import {
  type DesiredWatcher,
  type EffectiveSpec,
  startDesiredWatcher,
} from "../desired/watcher.ts";
import type { AgentPlugin, Sandbox } from "../plugins/types.ts";
import { parseDuration } from "../util/duration.ts";
import { createDaemonServices } from "./host_services.ts";
import type { NodeConfig } from "../config/schema.ts";
import { jittered } from "../util/backoff.ts";
import { atomicWrite } from "../util/atomic_write.ts";

/** Status of one agent. */
export type AgentStatus = "starting" | "running" | "failed" | "rejected" | "stopped";

interface Running {
  name: string;
  spec: AgentSpec;
  /** JSON of the spec (detects config/grant changes). */
  key: string;
  plugin: AgentPlugin | null;
  status: AgentStatus;
  version: number | null;
  timer?: ReturnType<typeof setInterval>;
  retry?: ReturnType<typeof setTimeout>;
  restarts: number;
  backoffMs: number;
  lastResult: unknown;
  lastError: string | null;
  lastRun: string | null;
  /** Completed mr_reconcile calls. */
  runs: number;
  /** Serialises start/swap/stop/calls of this agent. */
  chain: Promise<void>;
  /** A spec refused for this agent (do not retry until the spec changes). */
  refusedKey: string | null;
}

const DEFAULT_INTERVAL_MS = 30_000;
const MAX_BACKOFF_MS = 60_000;
const enc = new TextEncoder();

function errInfo(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; message?: unknown; name?: string };
  return {
    code: typeof e?.code === "string" ? e.code : e?.name ?? "error",
    message: typeof e?.message === "string" ? e.message : String(err),
  };
}

/** Creates the `agents` module. */
export function createAgentManager(_config: NodeConfig): DaemonModule {
  let ctx: DaemonContext | null = null;
  let sandbox: Sandbox | null = null;
  let sandboxLoading: Promise<Sandbox> | null = null;
  let store: ArtifactStore | null = null;
  let watcher: DesiredWatcher | null = null;
  let desired: EffectiveSpec | null = null;
  let stopping = false;
  const agents = new Map<string, Running>();
  const unsubs: (() => void)[] = [];

  const log = () => ctx!.logger.child({ component: "agents" });

  const event = (r: Running, name: string, data: Record<string, unknown>, priority = 1) =>
    ctx?.outbox.event("agent", name, { agent: r.name, ...data }, { agent: r.name, priority })
      .catch(() => {});

  const getSandbox = (): Promise<Sandbox> => {
    if (sandbox) return Promise.resolve(sandbox);
    sandboxLoading ??= (async () => {
      // loaded on first use: a daemon without agents never holds the sandbox in memory
      const { createSandbox } = await import("../plugins/mod.ts");
      sandbox = await createSandbox({
        stateDir: join(ctx!.config.state_dir, "agents"),
        services: createDaemonServices(ctx!),
        logger: ctx!.logger.child({ component: "sandbox" }),
      });
      return sandbox;
    })();
    return sandboxLoading;
  };

  // the last spec each agent ran successfully: after a restart (possibly offline) the node
  // starts these at once, and a desired version that cannot run never replaces them
  const runningFile = () => join(ctx!.config.state_dir, "agents", "running.json");
  const persistRunning = async () => {
    if (!ctx) return;
    const doc: Record<string, AgentSpec> = {};
    for (const r of agents.values()) if (r.status === "running") doc[r.name] = r.spec;
    try {
      await Deno.mkdir(join(ctx.config.state_dir, "agents"), { recursive: true, mode: 0o700 });
      await atomicWrite(runningFile(), JSON.stringify(doc));
    } catch (err) {
      log().warn("cannot record running agents", { error: String(err) });
    }
  };

  const isLeader = () => ctx?.module<ElectionModule>("election")?.isLeader() ?? true;

  const wanted = (): Map<string, AgentSpec> => {
    const out = new Map<string, AgentSpec>();
    if (!desired || !ctx) return out;
    const facts = ctx.facts();
    for (const a of desired.agents) {
      if (!matches(a.match, facts)) continue;
      if (a.leader_only && !isLeader()) continue;
      out.set(a.name, a);
    }
    return out;
  };

  /** Loads a spec into a new plugin and runs mr_init; throws on failure. */
  const instantiate = async (spec: AgentSpec): Promise<AgentPlugin> => {
    const bytes = await store!.fetch(spec.wasm);
    const sb = await getSandbox();
    const plugin = await sb.load(bytes, {
      name: spec.name,
      grants: spec.grants,
      limits: spec.limits,
    });
    try {
      if (plugin.has("mr_init")) {
        await plugin.call("mr_init", enc.encode(JSON.stringify(spec.config ?? null)));
      }
    } catch (err) {
      await plugin.close().catch(() => {});
      throw err;
    }
    return plugin;
  };

  const reconcileCall = async (r: Running, trigger: string): Promise<void> => {
    if (!r.plugin || r.status !== "running" || !ctx) return;
    if (!r.plugin.has("mr_reconcile")) return;
    try {
      const result = await r.plugin.callJson("mr_reconcile", {
        desired: r.spec.config ?? null,
        facts: ctx.facts(),
        state: {
          last_status: (r.lastResult as { status?: unknown } | null)?.status ?? null,
          runs: r.runs,
          last_run: r.lastRun,
        },
        trigger: { kind: trigger, at: new Date().toISOString() },
      });
      r.runs++;
      r.lastResult = result;
      r.lastRun = new Date().toISOString();
      r.lastError = null;
      r.backoffMs = 1000;
    } catch (err) {
      const e = errInfo(err);
      r.lastError = `${e.code}: ${e.message}`;
      log().warn("agent call failed", { agent: r.name, ...e });
      await event(r, "failed", {
        phase: "reconcile",
        code: e.code,
        error: e.message,
        sha256: r.spec.wasm.sha256,
      });
      // a stopped instance may be in any state: start a fresh one after a backoff
      await restartLater(r);
    }
  };

  const schedule = (r: Running) => {
    clearInterval(r.timer);
    const every = r.spec.triggers.interval
      ? parseDuration(r.spec.triggers.interval)
      : DEFAULT_INTERVAL_MS;
    r.timer = setInterval(() => enqueue(r, () => reconcileCall(r, "interval")), every);
  };

  const enqueue = (r: Running, fn: () => Promise<void>): Promise<void> => {
    const next = r.chain.then(fn).catch((err) => {
      log().error("agent operation failed", { agent: r.name, error: String(err) });
    });
    r.chain = next;
    return next;
  };

  const closePlugin = async (r: Running, plugin: AgentPlugin | null) => {
    if (!plugin) return;
    if (plugin.has("mr_shutdown")) {
      await plugin.call("mr_shutdown").catch((err) =>
        log().warn("mr_shutdown failed", { agent: r.name, error: errInfo(err).message })
      );
    }
    await plugin.close().catch(() => {});
  };

  const restartLater = async (r: Running) => {
    clearInterval(r.timer);
    const old = r.plugin;
    r.plugin = null;
    r.status = "failed";
    await closePlugin(r, old);
    if (stopping) return;
    const wait = jittered(r.backoffMs);
    r.backoffMs = Math.min(r.backoffMs * 2, MAX_BACKOFF_MS);
    clearTimeout(r.retry);
    r.retry = setTimeout(() => {
      if (stopping || agents.get(r.name) !== r) return;
      r.restarts++;
      enqueue(r, () => start(r, r.spec));
    }, wait);
  };

  const refuse = async (r: Running, spec: AgentSpec, err: unknown) => {
    const e = errInfo(err);
    const permanent = err instanceof ArtifactError
      ? err.code !== "download_failed"
      : ["invalid_module", "capability_denied", "memory_limit"].includes(e.code);
    r.lastError = `${e.code}: ${e.message}`;
    if (permanent) {
      r.refusedKey = JSON.stringify(spec);
      await event(r, "rejected", { code: e.code, reason: e.message, sha256: spec.wasm.sha256 });
    } else {
      await event(r, "failed", {
        phase: "start",
        code: e.code,
        error: e.message,
        sha256: spec.wasm.sha256,
      });
    }
    return permanent;
  };

  /** Starts (or restarts) `r` with `spec` (nothing running). */
  const start = async (r: Running, spec: AgentSpec): Promise<void> => {
    if (stopping) return;
    r.status = "starting";
    let plugin: AgentPlugin;
    try {
      plugin = await instantiate(spec);
    } catch (err) {
      const permanent = await refuse(r, spec, err);
      r.status = permanent ? "rejected" : "failed";
      if (!permanent) await restartLater(r);
      return;
    }
    r.plugin = plugin;
    r.spec = spec;
    r.key = JSON.stringify(spec);
    r.status = "running";
    r.version = desired?.versions ? Math.max(...Object.values(desired.versions)) : null;
    r.lastError = null;
    await event(r, "started", {
      sha256: spec.wasm.sha256,
      size: spec.wasm.size,
      version: r.version,
    });
    log().info("agent started", { agent: r.name, sha256: spec.wasm.sha256 });
    schedule(r);
    await persistRunning();
    await reconcileCall(r, "start");
  };

  /** Replaces the running version with `spec` only if the new one initialises. */
  const swap = async (r: Running, spec: AgentSpec): Promise<void> => {
    const gov = spec.rollout ? ctx?.module<GovernorModule>("governor") : undefined;
    const owner = `${ctx!.config.node}/${r.name}`;
    if (spec.rollout && gov) {
      const slot = await gov.acquire(spec.rollout.governor, {
        owner,
        capacity: spec.rollout.capacity,
        timeoutMs: 60_000,
      }).catch(() => ({ held: false }));
      if (!slot.held) {
        // try again later; the running version stays
        r.retry = setTimeout(() => enqueue(r, () => apply(r, spec)), 5_000);
        return;
      }
    }
    try {
      let plugin: AgentPlugin;
      try {
        plugin = await instantiate(spec);
      } catch (err) {
        await refuse(r, spec, err);
        return;
      }
      const old = r.plugin;
      const from = r.spec.wasm.sha256;
      clearInterval(r.timer);
      r.plugin = plugin;
      r.spec = spec;
      r.key = JSON.stringify(spec);
      r.status = "running";
      r.version = desired?.versions ? Math.max(...Object.values(desired.versions)) : null;
      r.lastError = null;
      await closePlugin(r, old);
      await event(r, "updated", { from, to: spec.wasm.sha256, version: r.version });
      log().info("agent updated", { agent: r.name, from, to: spec.wasm.sha256 });
      schedule(r);
      await persistRunning();
      await reconcileCall(r, "start");
    } finally {
      if (spec.rollout && gov) await gov.release(spec.rollout.governor, owner).catch(() => {});
    }
  };

  /** Brings one agent to `spec` (start, swap or nothing). */
  const apply = async (r: Running, spec: AgentSpec): Promise<void> => {
    const key = JSON.stringify(spec);
    if (r.refusedKey === key) return;
    if (r.plugin && r.status === "running") {
      if (r.key === key) return;
      await swap(r, spec);
      return;
    }
    clearTimeout(r.retry);
    await start(r, spec);
  };

  const stopAgent = async (r: Running, reason: string) => {
    clearInterval(r.timer);
    clearTimeout(r.retry);
    const p = r.plugin;
    r.plugin = null;
    r.status = "stopped";
    await closePlugin(r, p);
    await event(r, "stopped", { reason, sha256: r.spec.wasm.sha256 });
    if (!stopping) await persistRunning();
  };

  const newRunning = (name: string, spec: AgentSpec): Running => ({
    name,
    spec,
    key: "",
    plugin: null,
    status: "starting",
    version: null,
    restarts: 0,
    backoffMs: 1000,
    lastResult: null,
    lastError: null,
    lastRun: null,
    runs: 0,
    chain: Promise.resolve(),
    refusedKey: null,
  });

  const reconcileSet = (trigger: string) => {
    if (!ctx || stopping) return;
    const want = wanted();
    for (const [name, r] of agents) {
      if (!want.has(name)) {
        agents.delete(name);
        enqueue(r, () => stopAgent(r, "not desired on this node"));
      }
    }
    for (const [name, spec] of want) {
      let r = agents.get(name);
      if (!r) {
        r = newRunning(name, spec);
        agents.set(name, r);
      }
      const rr = r;
      enqueue(rr, async () => {
        await apply(rr, spec);
        if (trigger === "facts" && rr.spec.triggers.on_change) await reconcileCall(rr, "on_change");
      });
      if (trigger === "spec" && spec.triggers.on_change && rr.key === JSON.stringify(spec)) {
        enqueue(rr, () => reconcileCall(rr, "on_change"));
      }
    }
    // keep the current and previous modules of every agent; drop the rest
    const keep = new Set<string>();
    for (const r of agents.values()) keep.add(r.spec.wasm.sha256);
    for (const a of desired?.agents ?? []) keep.add(a.wasm.sha256);
    store?.gc(keep).catch(() => {});
  };

  const invoke: CommandHandler = async (payload) => {
    const p = payload as { agent?: unknown; command?: unknown; args?: unknown } | null;
    if (!p || typeof p.agent !== "string" || typeof p.command !== "string") {
      throw new CommandError(
        "bad_request",
        'invoke needs {"agent": NAME, "command": NAME, "args"?: JSON}',
      );
    }
    const r = agents.get(p.agent);
    if (!r || !r.plugin || r.status !== "running") {
      throw new CommandError("not_found", `agent "${p.agent}" is not running on this node`);
    }
    if (!r.plugin.has("mr_command")) {
      throw new CommandError("unsupported", `agent "${p.agent}" does not export mr_command`);
    }
    const plugin = r.plugin;
    let out: unknown;
    await enqueue(r, async () => {
      out = await plugin.callJson("mr_command", { command: p.command, args: p.args ?? null })
        .catch((err) => {
          const e = errInfo(err);
          out = { error: e };
        });
    });
    return out;
  };

  return {
    name: "agents",
    async start(c) {
      ctx = c;
      stopping = false;
      store = createArtifactStore({
        dir: join(c.config.state_dir, "cas"),
        ...(c.config.s3 ? { s3: c.config.s3 } : {}),
        logger: c.logger.child({ component: "artifacts" }),
      });
      unsubs.push(c.onFacts(() => reconcileSet("facts")));
      const el = c.module<ElectionModule>("election");
      if (el) unsubs.push(el.onLeadershipChange(() => reconcileSet("leadership")));
      // what ran before the restart starts first; the desired state then swaps from it
      try {
        const saved = JSON.parse(await Deno.readTextFile(runningFile())) as Record<
          string,
          AgentSpec
        >;
        for (const [name, spec] of Object.entries(saved)) {
          if (!matches(spec.match, c.facts()) || (spec.leader_only && !isLeader())) continue;
          const r = newRunning(name, spec);
          agents.set(name, r);
          enqueue(r, () => start(r, spec));
        }
      } catch { /* first start */ }
      watcher = await startDesiredWatcher({
        ctx: c,
        onSpec: (spec) => {
          desired = spec;
          reconcileSet("spec");
        },
      });
    },
    async stop() {
      stopping = true;
      unsubs.splice(0).forEach((u) => u());
      await watcher?.stop();
      await Promise.all(
        [...agents.values()].map((r) => enqueue(r, () => stopAgent(r, "daemon stopping"))),
      );
      agents.clear();
      await sandbox?.close().catch(() => {});
      sandbox = null;
      sandboxLoading = null;
    },
    health() {
      const list = [...agents.values()];
      const failing = list.filter((r) => r.status === "failed" || r.status === "rejected");
      return {
        status: failing.length ? "degraded" : "healthy",
        running: list.filter((r) => r.status === "running").length,
        failing: failing.length,
        desired: watcher?.health() ?? null,
        agents: list.map((r) => ({
          name: r.name,
          status: r.status,
          sha256: r.spec.wasm.sha256,
          version: r.version,
          restarts: r.restarts,
          last_run: r.lastRun,
          last_error: r.lastError,
        })),
      };
    },
    commands() {
      return {
        agents: () =>
          Promise.resolve([...agents.values()].map((r) => ({
            name: r.name,
            status: r.status,
            sha256: r.spec.wasm.sha256,
            version: r.version,
            restarts: r.restarts,
            last_result: r.lastResult,
            last_run: r.lastRun,
            last_error: r.lastError,
          }))),
        invoke,
      };
    },
  };
}
