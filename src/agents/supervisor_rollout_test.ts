// Unit tests of the supervisor's governor, rollout and local-policy transitions (fake
// clock, fake governor, fake rollout gate).
import { assert, assertEquals } from "@std/assert";
import { SandboxError } from "../plugins/types.ts";
import { ArtifactError } from "../artifacts/mod.ts";
import { PolicyError } from "./errors.ts";
import { harness, sha, spec } from "./_supervisor_harness.ts";

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

Deno.test("supervisor - rollout: no swap while its started record cannot be written; the slot is released and it asks again", async () => {
  let fails = true;
  const h = harness({ governor: { free: () => true }, rollout: { recordFails: () => fails } });
  const r = { rollout: { governor: "g", capacity: 2, max_failures: 1 } };
  await h.sup.desire(spec("a"));
  await h.sup.desire(spec("b", r));
  assertEquals(h.sup.running!.wasm.sha256, sha("a"), "not taken blind");
  assertEquals(h.sup.snapshot().held, "rollout_waiting");
  assertEquals(h.held, [], "slot released");
  await h.clock.tickAsync(5_000);
  await h.sup.idle();
  assertEquals(h.sup.running!.wasm.sha256, sha("a"), "still not taken");
  fails = false;
  await h.clock.tickAsync(5_000);
  await h.sup.idle();
  assertEquals(h.sup.running!.wasm.sha256, sha("b"));
  assertEquals(h.records.map((x) => x.state), ["started", "healthy"]);
  assertEquals(h.sup.snapshot().held, null);
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

Deno.test("supervisor - a rollout swap passes waiting_governor → swapping → running", async () => {
  const h = harness({ governor: { free: () => true }, rollout: {} });
  const r = { rollout: { governor: "g", capacity: 1, max_failures: 1 } };
  await h.sup.desire(spec("a", r));
  h.states.length = 0;
  await h.sup.desire(spec("b", r));
  assertEquals(h.states, ["waiting_governor", "swapping", "running"]);
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
