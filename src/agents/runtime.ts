/**
 * The agent runtime: one {@linkcode AgentSupervisor} per agent, wired to the effective
 * desired state, the node's facts and leadership, the module cache and the sandbox. It holds
 * no per-agent state of its own; selection and the cache keep-set are pure functions
 * (`select.ts`), `running.json` is behind a zod schema (`running_cache.ts`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { ArtifactStore } from "../artifacts/mod.ts";
import { ArtifactError } from "../artifacts/mod.ts";
import type { AgentSpec } from "../desired/spec.ts";
import type { EffectiveSpec } from "../desired/watcher.ts";
import type { Logger } from "../log/logger.ts";
import type { Sandbox } from "../plugins/types.ts";
import { BuiltinNotFoundError } from "./errors.ts";
import type { RolloutGate } from "./rollout.ts";
import {
  emptyRunningCache,
  nextRunningCache,
  readRunningCache,
  type RunningCache,
  writeRunningCache,
} from "./running_cache.ts";
import { cacheKeepSet, pushHistory, selectAgents } from "./select.ts";
import {
  AgentSupervisor,
  type SupervisorClock,
  type SupervisorGovernor,
  type SupervisorSnapshot,
} from "./supervisor.ts";

/** What the runtime is given. */
export interface AgentRuntimeOptions {
  store: Pick<ArtifactStore, "fetch" | "gc">;
  /** The sandbox (created on first use: a node without agents never loads it). */
  sandbox: () => Promise<Pick<Sandbox, "load">>;
  clock: SupervisorClock;
  logger: Logger;
  /** `running.json`'s path. */
  runningFile: string;
  facts(): Record<string, unknown>;
  isLeader(): boolean;
  emit(agent: string, event: string, data: Record<string, unknown>): void;
  governor?(): SupervisorGovernor | undefined;
  rollout?: RolloutGate;
  /** Governor owner of an agent. @default {agent} */
  owner?(agent: string): string;
  /** Compiled-in agents for `builtin:<name>` URLs. */
  builtin?: Record<string, () => Promise<Uint8Array>>;
  /** Local policy check (throws `PolicyError`). */
  admit?(spec: AgentSpec): void;
}

/** One agent as the `agents` command and health show it. */
export interface AgentView extends SupervisorSnapshot {
  /** Key, version and signer of the spec, when it comes from the desired state. */
  origin: { key: string; version: number; signer: string } | null;
}

/** The runtime. */
export interface AgentRuntime {
  /** Starts what ran before a restart (from `running.json`). */
  restore(): Promise<void>;
  /** A new effective spec, new facts or a leadership change. */
  apply(desired: EffectiveSpec | null, trigger: "spec" | "facts" | "leadership"): void;
  /** Local policy changed: re-check every agent. */
  recheck(): void;
  supervisor(name: string): AgentSupervisor | undefined;
  list(): AgentView[];
  stop(reason: string): Promise<void>;
}

/** Builds the runtime. */
export function createAgentRuntime(o: AgentRuntimeOptions): AgentRuntime {
  const sups = new Map<string, AgentSupervisor>();
  let desired: EffectiveSpec | null = null;
  let cache: RunningCache = emptyRunningCache();
  let stopping = false;
  let persisting: Promise<void> = Promise.resolve();
  const log = o.logger;

  const version = () => desired?.versions ? Math.max(0, ...Object.values(desired.versions)) : null;

  const fetchModule = async (spec: AgentSpec): Promise<Uint8Array> => {
    if (!spec.wasm.url.startsWith("builtin:")) return await o.store.fetch(spec.wasm);
    const name = spec.wasm.url.slice("builtin:".length);
    const src = o.builtin?.[name];
    if (!src) {
      const known = Object.keys(o.builtin ?? {}).join(", ") || "none";
      throw new BuiltinNotFoundError(
        `built-in agent "${name}" is not compiled into this binary (built-in: ${known})`,
      );
    }
    const bytes = await src();
    if (bytes.length !== spec.wasm.size) {
      throw new ArtifactError(
        "size_mismatch",
        `builtin:${name} is ${bytes.length} bytes, the spec says ${spec.wasm.size}`,
      );
    }
    const sha = createHash("sha256").update(bytes).digest("hex");
    if (sha !== spec.wasm.sha256) {
      throw new ArtifactError(
        "hash_mismatch",
        `builtin:${name} has sha256 ${sha}, the spec says ${spec.wasm.sha256}`,
      );
    }
    return bytes;
  };

  const persist = () => {
    if (stopping) return;
    persisting = persisting.then(async () => {
      const running: Record<string, AgentSpec> = {};
      for (const [name, s] of sups) {
        const spec = s.running;
        if (spec && s.state !== "stopped" && s.state !== "removing") running[name] = spec;
      }
      cache = nextRunningCache(cache, running, pushHistory);
      try {
        await writeRunningCache(o.runningFile, cache);
      } catch (err) {
        log.warn("cannot record running agents", { error: String(err) });
      }
      const keep = cacheKeepSet(desired?.agents ?? [], cache.history);
      for (const s of sups.values()) if (s.running) keep.add(s.running.wasm.sha256);
      await o.store.gc(keep).catch(() => {});
    });
  };

  const supervisor = (name: string): AgentSupervisor => {
    let s = sups.get(name);
    if (s && s.state !== "stopped") return s;
    s = new AgentSupervisor({
      name,
      clock: o.clock,
      logger: log,
      fetch: fetchModule,
      load: async (spec, bytes) =>
        await (await o.sandbox()).load(bytes, {
          name: spec.name,
          grants: spec.grants,
          limits: spec.limits,
          config: spec.config ?? null,
        }),
      facts: o.facts,
      emit: (event, data) => o.emit(name, event, data),
      changed: persist,
      ...(o.admit ? { admit: o.admit } : {}),
      ...(o.governor ? { governor: o.governor } : {}),
      ...(o.rollout ? { rollout: o.rollout } : {}),
      owner: o.owner?.(name) ?? name,
      version,
    });
    sups.set(name, s);
    return s;
  };

  return {
    async restore() {
      try {
        cache = await readRunningCache(o.runningFile);
      } catch (err) {
        log.error("ignoring running agents cache", { error: (err as Error).message });
        return;
      }
      const chosen = selectAgents(Object.values(cache.agents), o.facts(), o.isLeader());
      for (const [name, spec] of chosen) supervisor(name).resume(spec);
    },
    apply(next, trigger) {
      if (stopping) return;
      if (next) desired = next;
      if (!desired) return;
      const want = selectAgents(desired.agents, o.facts(), o.isLeader());
      const named = new Set(desired.agents.map((a) => a.name));
      for (const [name, s] of sups) {
        if (want.has(name) || s.state === "stopped" || s.state === "removing") continue;
        if (named.has(name)) s.remove("not desired on this node", "stopped");
        else {
          // gone from the desired state: forgotten once stopped (its hashes stay in history)
          s.remove("unpublished", "removed").then(() => {
            if (sups.get(name) === s) sups.delete(name);
          });
        }
      }
      for (const [name, spec] of want) {
        const s = supervisor(name);
        const same = s.running && JSON.stringify(s.running) === JSON.stringify(spec);
        s.desire(spec);
        if (spec.triggers.on_change && (trigger === "facts" || (trigger === "spec" && same))) {
          s.trigger("on_change");
        }
      }
    },
    recheck() {
      for (const s of sups.values()) s.recheck();
    },
    supervisor: (name) => sups.get(name),
    list() {
      return [...sups.values()].map((s) => {
        const snap = s.snapshot();
        return { ...snap, origin: desired?.origins?.[snap.name] ?? null };
      });
    },
    async stop(reason) {
      // what runs now stays in running.json: the next start begins with it
      stopping = true;
      await persisting;
      await Promise.all([...sups.values()].map((s) => s.remove(reason, "stopped")));
    },
  };
}
