// Unit tests of the per-agent supervisor: a fake clock, fake plugins and a fake governor
// drive every transition, with no sandbox, network or sleeps.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { type AgentSpec, agentSpecSchema } from "../desired/spec.ts";
import type { AgentPlugin } from "../plugins/types.ts";
import { SandboxError } from "../plugins/types.ts";
import { createLogger } from "../log/logger.ts";
import { ArtifactError } from "../artifacts/mod.ts";
import { AgentSupervisor, type SupervisorDeps, type SupervisorState } from "./supervisor.ts";
import { AgentCallError, PolicyError } from "./errors.ts";
import type { RolloutGate, RolloutState } from "./rollout.ts";
import { FakeClock } from "../util/clock.ts";

async function flush() {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
}

const sha = (c: string) => c.repeat(64);
function spec(c: string, extra: Record<string, unknown> = {}): AgentSpec {
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

function harness(o: {
  fetch?: (s: AgentSpec) => Promise<Uint8Array>;
  behave?: Record<string, FakeBehaviour>;
  governor?: { free: () => boolean };
  rollout?: { halted?: () => boolean };
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
            if (s.rollout) records.push({ sha: s.wasm.sha256, state, ...(code ? { code } : {}) });
            return Promise.resolve();
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

Deno.test("supervisor - idle → downloading → loading → running, reconcile on its interval", async () => {
  const h = harness();
  assertEquals(h.sup.state, "idle");
  await h.sup.desire(spec("a"));
  assertEquals(h.states, ["downloading", "loading", "running"]);
  assertEquals(h.names(), ["started"]);
  assertEquals(h.calls, ["a:mr_init", "a:mr_reconcile"]);
  await h.clock.tickAsync(10_000);
  await h.sup.idle();
  assertEquals(h.calls.filter((c) => c === "a:mr_reconcile").length, 2);
  assertEquals(h.sup.snapshot().runs, 2);
});

Deno.test("supervisor - facts reach mr_reconcile only with the facts grant", async () => {
  const h = harness();
  await h.sup.desire(spec("a"));
  assertEquals(h.lastInput()!.facts, {});
  await h.sup.desire(spec("b", { grants: { facts: true } }));
  assertEquals(h.lastInput()!.facts, { os: { platform: "linux" } });
});

Deno.test("supervisor - a transient download error backs off, then starts", async () => {
  let fail = true;
  const h = harness({
    fetch: () =>
      fail
        ? Promise.reject(new ArtifactError("download_failed", "s3 down"))
        : Promise.resolve(new Uint8Array([0])),
  });
  await h.sup.desire(spec("a"));
  assertEquals(h.sup.state, "backoff");
  assertEquals(h.names(), ["failed"]);
  fail = false;
  await h.clock.tickAsync(1_000);
  await h.sup.idle();
  assertEquals(h.sup.state, "running");
  assertEquals(h.names(), ["failed", "started"]);
});

Deno.test("supervisor - a permanent refusal is rejected and not retried until the spec changes", async () => {
  const h = harness({
    fetch: (s) =>
      s.wasm.sha256 === sha("a")
        ? Promise.reject(new ArtifactError("hash_mismatch", "bad bytes"))
        : Promise.resolve(new Uint8Array([0])),
  });
  await h.sup.desire(spec("a"));
  assertEquals(h.sup.state, "rejected");
  await h.clock.tickAsync(120_000);
  await h.sup.desire(spec("a"));
  assertEquals(h.names(), ["rejected"]);
  await h.sup.desire(spec("b"));
  assertEquals(h.sup.state, "running");
});

Deno.test("supervisor - a failing reconcile closes the instance and restarts it after a backoff", async () => {
  let bad = true;
  const h = harness({
    behave: {
      a: {
        reconcile: () =>
          bad ? Promise.reject(new SandboxError("trap", "boom")) : Promise.resolve({}),
      },
    },
  });
  await h.sup.desire(spec("a"));
  assertEquals(h.sup.state, "backoff");
  assert(h.plugins[0]!.closed);
  assertEquals(h.names(), ["started", "failed"]);
  bad = false;
  await h.clock.tickAsync(1_000);
  await h.sup.idle();
  assertEquals(h.sup.state, "running");
  assertEquals(h.sup.snapshot().restarts, 1);
});

Deno.test("supervisor - hot swap: the new version initialises before the old one shuts down", async () => {
  const h = harness();
  await h.sup.desire(spec("a"));
  await h.sup.desire(spec("b"));
  assertEquals(h.sup.running!.wasm.sha256, sha("b"));
  assertEquals(h.calls.slice(2), ["b:mr_init", "a:mr_shutdown", "b:mr_reconcile"]);
  assertEquals(h.names(), ["started", "updated"]);
  assert(h.states.includes("swapping"));
});

Deno.test("supervisor - a swap whose mr_init fails keeps the old version running", async () => {
  const h = harness({
    behave: { b: { init: () => Promise.reject(new SandboxError("trap", "init")) } },
  });
  await h.sup.desire(spec("a"));
  await h.sup.desire(spec("b"));
  assertEquals(h.sup.state, "running");
  assertEquals(h.sup.running!.wasm.sha256, sha("a"));
  assertEquals(h.names(), ["started", "failed"]);
  assert(!h.plugins[0]!.closed);
});

Deno.test("supervisor - governor full then free: waits, then swaps while holding a slot", async () => {
  let free = false;
  const h = harness({ governor: { free: () => free } });
  const rollout = { rollout: { governor: "g", capacity: 1 } };
  await h.sup.desire(spec("a", rollout));
  await h.sup.desire(spec("b", rollout));
  assertEquals(h.sup.state, "waiting_governor");
  assertEquals(h.sup.running!.wasm.sha256, sha("a"));
  await h.clock.tickAsync(5_000);
  await h.sup.idle();
  assertEquals(h.sup.state, "waiting_governor");
  free = true;
  await h.clock.tickAsync(5_000);
  await h.sup.idle();
  assertEquals(h.sup.state, "running");
  assertEquals(h.sup.running!.wasm.sha256, sha("b"));
  assertEquals(h.held, [], "slot released after the swap");
});

Deno.test("supervisor - swap while retrying: a newer spec cancels the stale governor retry", async () => {
  // the old fault: a retry timer set while the governor was full later swapped the agent
  // back to the spec it was waiting for
  let free = false;
  const h = harness({ governor: { free: () => free } });
  const rollout = { rollout: { governor: "g", capacity: 1 } };
  await h.sup.desire(spec("a"));
  await h.sup.desire(spec("b", rollout)); // waits for a slot, retry timer pending
  assertEquals(h.sup.state, "waiting_governor");
  await h.sup.desire(spec("c")); // no rollout: swaps at once
  assertEquals(h.sup.running!.wasm.sha256, sha("c"));
  free = true;
  await h.clock.tickAsync(60_000);
  await h.sup.idle();
  assertEquals(h.sup.running!.wasm.sha256, sha("c"), "no swap back to the stale spec");
  assertEquals(h.names(), ["started", "updated"]);
  assertEquals(h.clock.pending, 1, "only the reconcile interval is pending");
});

Deno.test("supervisor - a spec change during a download discards the old download", async () => {
  const gate = deferred<Uint8Array>();
  const h = harness({
    fetch: (s) => s.wasm.sha256 === sha("a") ? gate.promise : Promise.resolve(new Uint8Array([1])),
  });
  const first = h.sup.desire(spec("a"));
  await flush();
  assertEquals(h.sup.state, "downloading");
  const second = h.sup.desire(spec("b"));
  gate.resolve(new Uint8Array([0]));
  await first;
  await second;
  assertEquals(h.sup.state, "running");
  assertEquals(h.sup.running!.wasm.sha256, sha("b"));
  assertEquals(h.plugins.map((p) => p.sha), [sha("b")], "a was never loaded");
  assertEquals(h.names(), ["started"]);
});

Deno.test("supervisor - a removal during a call waits for it, shuts down, and does not restart", async () => {
  const call = deferred<unknown>();
  let slow = false;
  const h = harness({
    behave: { a: { reconcile: () => slow ? call.promise : Promise.resolve({}) } },
  });
  await h.sup.desire(spec("a"));
  slow = true;
  await h.clock.tickAsync(10_000); // an interval call starts and hangs
  assert(h.calls.filter((c) => c === "a:mr_reconcile").length === 2);
  const removed = h.sup.remove("unpublished", "removed");
  assertEquals(h.sup.state, "removing");
  assert(!h.calls.includes("a:mr_shutdown"), "shutdown waits for the call");
  call.reject(new SandboxError("trap", "late failure"));
  await removed;
  assertEquals(h.sup.state, "stopped");
  assert(h.calls.includes("a:mr_shutdown"));
  assertEquals(h.names().at(-1), "removed");
  await h.clock.tickAsync(120_000);
  assertEquals(h.sup.state, "stopped", "no restart after removal");
  assertEquals(h.clock.pending, 0);
  await h.sup.desire(spec("b"));
  assertEquals(h.sup.state, "stopped", "a stopped supervisor stays stopped");
});

Deno.test("supervisor - desire during backoff cancels the retry and starts the new spec at once", async () => {
  const h = harness({
    fetch: (s) =>
      s.wasm.sha256 === sha("a")
        ? Promise.reject(new ArtifactError("download_failed", "down"))
        : Promise.resolve(new Uint8Array([0])),
  });
  await h.sup.desire(spec("a"));
  assertEquals(h.sup.state, "backoff");
  await h.sup.desire(spec("b"));
  assertEquals(h.sup.state, "running");
  await h.clock.tickAsync(120_000);
  await h.sup.idle();
  assertEquals(h.sup.running!.wasm.sha256, sha("b"));
  assertEquals(h.names(), ["failed", "started"]);
});

Deno.test("supervisor - local policy refuses a spec and stops a running agent it now forbids", async () => {
  let denyB = false;
  const h = harness({
    admit: (s) => {
      if (denyB && s.wasm.sha256 === sha("a")) throw new PolicyError("deny.sha256", "denied");
    },
  });
  await h.sup.desire(spec("a"));
  assertEquals(h.sup.state, "running");
  denyB = true;
  await h.sup.recheck();
  assertEquals(h.sup.state, "rejected");
  assert(h.calls.includes("a:mr_shutdown"));
  const rej = h.events.find((e) => e.event === "rejected")!;
  assertEquals(rej.data.code, "local_policy");
  assertEquals(rej.data.rule, "deny.sha256");
  denyB = false;
  await h.sup.recheck();
  assertEquals(h.sup.state, "running");
});

Deno.test("supervisor - rollout: halted rollouts are not taken; outcomes are recorded", async () => {
  let halted = false;
  const h = harness({ governor: { free: () => true }, rollout: { halted: () => halted } });
  const r = { rollout: { governor: "g", capacity: 2, max_failures: 1 } };
  await h.sup.desire(spec("a", r));
  assertEquals(h.records.map((x) => x.state), ["healthy"]);
  halted = true;
  await h.sup.desire(spec("b", r));
  assertEquals(h.sup.running!.wasm.sha256, sha("a"));
  assertEquals(h.sup.snapshot().held, "rollout_halted");
  halted = false;
  await h.sup.desire(spec("c", r));
  assertEquals(h.sup.running!.wasm.sha256, sha("c"));
  assertEquals(h.records.map((x) => x.state), ["healthy", "started", "healthy"]);
});

Deno.test("supervisor - rollout with auto_rollback: a version failing its first run goes back", async () => {
  const h = harness({
    governor: { free: () => true },
    rollout: {},
    behave: { b: { reconcile: () => Promise.reject(new SandboxError("trap", "bad")) } },
  });
  const r = { rollout: { governor: "g", capacity: 2, max_failures: 1, auto_rollback: true } };
  await h.sup.desire(spec("a", r));
  await h.sup.desire(spec("b", r));
  assertEquals(h.sup.state, "running");
  assertEquals(h.sup.running!.wasm.sha256, sha("a"));
  assertEquals(h.records.map((x) => `${x.sha[0]}:${x.state}`), [
    "a:healthy",
    "b:started",
    "b:failed",
    "a:healthy",
  ]);
  assert(h.names().includes("rolled_back"));
  assertEquals(h.held, []);
});

Deno.test("supervisor - resume: a desired version that cannot run never replaces what ran before", async () => {
  const h = harness({
    fetch: (s) =>
      s.wasm.sha256 === sha("b")
        ? Promise.reject(new ArtifactError("not_found", "404"))
        : Promise.resolve(new Uint8Array([0])),
  });
  const resumed = h.sup.resume(spec("a"));
  const desired = h.sup.desire(spec("b")); // the cached desired state arrives at once
  await resumed;
  await desired;
  assertEquals(h.sup.state, "running");
  assertEquals(h.sup.running!.wasm.sha256, sha("a"));
  assertEquals(h.names(), ["started", "rejected"]);
});

Deno.test("supervisor - a removal during a download stops without loading; slow calls do not pile up", async () => {
  const gate = deferred<Uint8Array>();
  const h = harness({ fetch: () => gate.promise });
  const start = h.sup.desire(spec("a"));
  await flush();
  assertEquals(h.sup.state, "downloading");
  const removed = h.sup.remove("unpublished", "removed");
  assertEquals(h.sup.state, "removing");
  gate.resolve(new Uint8Array([0]));
  await start;
  await removed;
  assertEquals(h.sup.state, "stopped");
  assertEquals(h.plugins.length, 0, "never loaded");

  const call = deferred<unknown>();
  let slow = false;
  const g = harness({
    behave: { a: { reconcile: () => slow ? call.promise : Promise.resolve({}) } },
  });
  await g.sup.desire(spec("a"));
  slow = true;
  await g.clock.tickAsync(60_000); // six intervals pass while one call hangs
  const before = g.calls.filter((c) => c === "a:mr_reconcile").length;
  call.resolve({});
  await g.sup.idle();
  const after = g.calls.filter((c) => c === "a:mr_reconcile").length;
  assert(after - before <= 1, `at most one queued interval call, saw ${after - before}`);
});

Deno.test("supervisor - a rollout swap passes waiting_governor → swapping → running", async () => {
  const h = harness({ governor: { free: () => true }, rollout: {} });
  const r = { rollout: { governor: "g", capacity: 1, max_failures: 1 } };
  await h.sup.desire(spec("a", r));
  h.states.length = 0;
  await h.sup.desire(spec("b", r));
  assertEquals(h.states, ["waiting_governor", "swapping", "running"]);
});

Deno.test("supervisor - invoke calls mr_command on the running version; refused when not running", async () => {
  const h = harness();
  await assertRejects(() => h.sup.invoke("status", null), AgentCallError, "not running");
  await h.sup.desire(spec("a"));
  assertEquals(await h.sup.invoke("status", { x: 1 }), { status: "ok" });
  assert(h.calls.includes("a:mr_command"));
  await h.sup.remove("test");
  await assertRejects(() => h.sup.invoke("status", null), AgentCallError, "not running");
});

Deno.test("supervisor - a second remove while removing emits one event; a lost rollback target is retried", async () => {
  const h = harness();
  await h.sup.desire(spec("a"));
  await Promise.all([h.sup.remove("x", "removed"), h.sup.remove("x", "removed")]);
  assertEquals(h.names().filter((n) => n === "removed").length, 1);

  let failStart = false;
  const g = harness({
    governor: { free: () => true },
    rollout: {},
    fetch: (s) =>
      failStart && s.wasm.sha256 === sha("a")
        ? Promise.reject(new ArtifactError("download_failed", "cache gone, s3 down"))
        : Promise.resolve(new Uint8Array([0])),
    behave: { b: { reconcile: () => Promise.reject(new SandboxError("trap", "bad")) } },
  });
  const r = { rollout: { governor: "g", capacity: 1, max_failures: 1, auto_rollback: true } };
  await g.sup.desire(spec("a", r));
  failStart = true;
  await g.sup.desire(spec("b", r));
  assertEquals(g.sup.state, "backoff", "going back to a failed to start");
  failStart = false;
  await g.clock.tickAsync(2_000);
  await g.sup.idle();
  assertEquals(g.sup.state, "running");
  assertEquals(g.sup.running!.wasm.sha256, sha("a"), "back on the previous version, not b");
});
