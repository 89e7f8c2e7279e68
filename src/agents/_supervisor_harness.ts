// Test harness of the supervisor tests: a fake clock, fake plugins, a fake governor and a
// fake rollout gate; no sandbox, network or sleeps.
import { type AgentSpec, agentSpecSchema } from "../desired/spec.ts";
import type { AgentPlugin } from "../plugins/types.ts";
import { createLogger } from "../log/logger.ts";
import { AgentSupervisor, type SupervisorDeps, type SupervisorState } from "./supervisor.ts";
import type { RolloutGate, RolloutState } from "./rollout.ts";
import { FakeClock } from "../util/clock.ts";

export async function flush() {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
}

export const sha = (c: string) => c.repeat(64);
export function spec(c: string, extra: Record<string, unknown> = {}): AgentSpec {
  return agentSpecSchema.parse({
    name: "a1",
    wasm: { sha256: sha(c), size: 10, url: `s3://b/sha256/${sha(c)}.wasm` },
    triggers: { interval: "10s" },
    ...extra,
  });
}

interface FakeBehaviour {
  init?: () => Promise<void>;
  reconcile?: () => Promise<unknown>;
}

export function harness(o: {
  fetch?: (s: AgentSpec) => Promise<Uint8Array>;
  behave?: Record<string, FakeBehaviour>;
  governor?: { free: () => boolean };
  rollout?: { halted?: () => boolean; recordFails?: () => boolean };
  admit?: (s: AgentSpec) => void;
} = {}) {
  const clock = new FakeClock({ now: 1_700_000_000_000 });
  const events: { event: string; data: Record<string, unknown> }[] = [];
  const calls: string[] = [];
  const plugins: { sha: string; closed: boolean }[] = [];
  const records: { sha: string; state: RolloutState; code?: string }[] = [];
  const held: string[] = [];
  let facts: Record<string, unknown> = { os: { platform: "linux" } };
  const deps: SupervisorDeps = {
    name: "a1",
    clock,
    logger: createLogger({ level: "silent" }),
    fetch: o.fetch ?? (() => Promise.resolve(new Uint8Array([0]))),
    load: (s) => {
      const key = s.wasm.sha256[0]!;
      const b = o.behave?.[key] ?? {};
      const rec = { sha: s.wasm.sha256, closed: false };
      plugins.push(rec);
      const p: AgentPlugin = {
        name: "a1",
        info: {} as AgentPlugin["info"],
        lastCall: null,
        has: (fn) => ["mr_init", "mr_reconcile", "mr_shutdown", "mr_command"].includes(fn),
        call: async (fn) => {
          calls.push(`${key}:${fn}`);
          if (fn === "mr_init" && b.init) await b.init();
          return new Uint8Array();
        },
        callJson: async <T>(fn: string, input?: unknown) => {
          calls.push(`${key}:${fn}`);
          if (fn === "mr_reconcile") {
            lastInput = input as Record<string, unknown>;
            if (b.reconcile) return await b.reconcile() as T;
          }
          return { status: "ok" } as T;
        },
        close: () => {
          rec.closed = true;
          return Promise.resolve();
        },
      };
      return Promise.resolve(p);
    },
    facts: () => facts,
    emit: (event, data) => events.push({ event, data }),
    changed: () => {},
    random: () => 0,
    ...(o.admit ? { admit: o.admit } : {}),
    ...(o.governor
      ? {
        governor: () => ({
          acquire: (_n: string, a: { owner: string }) => {
            if (!o.governor!.free()) return Promise.resolve({ held: false });
            held.push(a.owner);
            return Promise.resolve({ held: true });
          },
          release: (_n: string, owner: string) => {
            held.splice(held.indexOf(owner), 1);
            return Promise.resolve();
          },
        }),
      }
      : {}),
    ...(o.rollout
      ? {
        rollout: {
          check: () => Promise.resolve(o.rollout!.halted?.() ? "halted" : "go"),
          record: (s, _prev, state, code) => {
            if (o.rollout!.recordFails?.()) return Promise.resolve(false);
            if (s.rollout) records.push({ sha: s.wasm.sha256, state, ...(code ? { code } : {}) });
            return Promise.resolve(true);
          },
        } satisfies RolloutGate,
      }
      : {}),
  };
  let lastInput: Record<string, unknown> | null = null;
  const sup = new AgentSupervisor(deps);
  const states: SupervisorState[] = [];
  sup.onState((s) => states.push(s));
  return {
    sup,
    clock,
    events,
    calls,
    plugins,
    records,
    held,
    states,
    names: () => events.map((e) => e.event),
    setFacts: (f: Record<string, unknown>) => (facts = f),
    lastInput: () => lastInput,
  };
}
