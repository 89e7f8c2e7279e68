// Unit tests of the per-agent supervisor (start, backoff, swap, removal, resume, invoke):
// a fake clock, fake plugins and a fake governor drive every transition.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { SandboxError } from "../plugins/types.ts";
import { ArtifactError } from "../artifacts/mod.ts";
import { AgentCallError } from "./errors.ts";
import { deferred, flush, harness, sha, spec } from "./_supervisor_harness.ts";

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

Deno.test("supervisor - invoke calls mr_command on the running version; refused when not running", async () => {
  const h = harness();
  await assertRejects(() => h.sup.invoke("status", null), AgentCallError, "not running");
  await h.sup.desire(spec("a"));
  assertEquals(await h.sup.invoke("status", { x: 1 }), { status: "ok" });
  assert(h.calls.includes("a:mr_command"));
  await h.sup.remove("test");
  await assertRejects(() => h.sup.invoke("status", null), AgentCallError, "not running");
});
