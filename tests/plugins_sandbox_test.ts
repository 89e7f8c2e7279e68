import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { inspectModule, isSandboxError, PluginError, SandboxError } from "../src/plugins/mod.ts";
import type { AgentPlugin, SandboxErrorCode } from "../src/plugins/mod.ts";
import { compileWat, setupSandbox } from "./helpers/wat.ts";

const noGrants = grantsSchema.parse({});
const limits = limitsSchema.parse({ fuel: 5_000_000, timeout_ms: 3_000, memory_mb: 1 });
const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function expectStop(p: AgentPlugin, fn: string, code: SandboxErrorCode): Promise<void> {
  const err = await assertRejects(() => p.call(fn), SandboxError);
  assertEquals((err as SandboxError).code, code, (err as Error).message);
  // the same plugin serves the next call
  assertEquals((await p.call("ok")).length, 0);
}

Deno.test("sandbox - echo returns its input and noop returns empty output", async () => {
  await using t = await setupSandbox();
  const echo = await t.sandbox.load(await compileWat("echo"), {
    name: "echo",
    grants: noGrants,
    limits,
  });
  assertEquals(text(await echo.call("echo", "hello sandbox")), "hello sandbox");
  assertEquals(await echo.callJson("echo", { a: [1, 2] }), { a: [1, 2] });
  assert(echo.has("echo"));
  assert(!echo.has("nope"));
  assertMatch(echo.info.sha256, /^[0-9a-f]{64}$/);
  const noop = await t.sandbox.load(await compileWat("noop"), {
    name: "noop",
    grants: noGrants,
    limits,
  });
  assertEquals(await noop.callJson("noop"), null);
});

Deno.test("sandbox - each stop code and the next call works", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("runaway"), {
    name: "runaway",
    grants: noGrants,
    limits: { ...limits, fuel: 100_000_000, output_max_bytes: 1024, memory_mb: 4 },
  });
  await expectStop(p, "spin", "fuel_exhausted");
  await expectStop(p, "recurse", "trap");
  await expectStop(p, "crash", "trap");
  await expectStop(p, "grow", "memory_limit");
  await expectStop(p, "huge", "output_too_large");
  // the metered compute loop (5 M iterations of 14 instructions: 70 M fuel) finishes within it
  assertEquals((await p.call("compute")).length, 0);
});

Deno.test("sandbox - kernel allocations over memory_mb stop with memory_limit", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("runaway"), {
    name: "alloc-bomb",
    grants: noGrants,
    limits: { ...limits, memory_mb: 1, output_max_bytes: 10_000_000 },
  });
  await expectStop(p, "huge", "memory_limit");
});

Deno.test("sandbox - a host call past the deadline stops with timeout and the host keeps serving", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("exec"), {
    name: "sleeper",
    grants: grantsSchema.parse({ exec: [["sleep", "10"], ["echo", "again"]] }),
    limits: { ...limits, timeout_ms: 300 },
  });
  const started = Date.now();
  const err = await assertRejects(
    () => p.callJson("mr_exec", { argv: ["sleep", "10"] }),
    SandboxError,
  );
  assertEquals((err as SandboxError).code, "timeout");
  assert(Date.now() - started < 5_000, "the sleep was cut short");
  assertEquals(await p.callJson("mr_exec", { argv: ["echo", "again"] }), {
    code: 0,
    stdout: "again\n",
    stderr: "",
  });
});

Deno.test("sandbox - a runaway loop with ample fuel is stopped at its deadline as timeout", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("runaway"), {
    name: "spinner",
    grants: noGrants,
    limits: { ...limits, fuel: 1_000_000_000_000, timeout_ms: 100 },
  });
  const other = await t.sandbox.load(await compileWat("echo"), {
    name: "bystander",
    grants: noGrants,
    limits,
  });
  const started = Date.now();
  const err = await assertRejects(() => p.call("spin"), SandboxError);
  assertEquals((err as SandboxError).code, "timeout");
  assert(Date.now() - started < 1_000, "stopped inside the runtime thread, not by the watchdog");
  assertEquals(text(await other.call("echo", "still here")), "still here");
  assertEquals((await p.call("ok")).length, 0);
});

Deno.test("sandbox - invalid modules are refused with invalid_module", async () => {
  await using t = await setupSandbox();
  const valid = await compileWat("echo");
  const cases: [string, Uint8Array][] = [
    ["garbage", new TextEncoder().encode("this is not wasm at all")],
    ["empty", new Uint8Array()],
    ["truncated", valid.slice(0, valid.length - 7)],
    ["unknown host function", await compileWat("unknown_import")],
    ["unknown WASI function", await compileWat("wasi_unknown")],
  ];
  for (const [label, bytes] of cases) {
    const err = await assertRejects(
      () => t.sandbox.load(bytes, { name: "bad", grants: noGrants, limits }),
      SandboxError,
    );
    assertEquals((err as SandboxError).code, "invalid_module", label);
  }
  // the sandbox still loads good modules
  const ok = await t.sandbox.load(valid, { name: "good", grants: noGrants, limits });
  assertEquals(text(await ok.call("echo", "x")), "x");
});

Deno.test("sandbox - a module importing mr_exec without an exec grant is refused at load", async () => {
  await using t = await setupSandbox();
  const wasm = await compileWat("exec");
  const err = await assertRejects(
    () => t.sandbox.load(wasm, { name: "exec", grants: noGrants, limits }),
    SandboxError,
  );
  assert(isSandboxError(err, "capability_denied"));
  assertMatch((err as Error).message, /mr_exec/);
});

Deno.test("sandbox - plugin-reported errors are PluginError and not stops", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("plugin_error"), {
    name: "failing",
    grants: noGrants,
    limits,
  });
  const err = await assertRejects(() => p.call("fail", "disk is full"), PluginError);
  assertEquals((err as Error).message, "disk is full");
  const again = await assertRejects(() => p.call("fail", "still full"), PluginError);
  assertEquals((again as Error).message, "still full");
});

Deno.test("sandbox - calls to plugins on two threads run concurrently, one plugin is never re-entered", async () => {
  await using t = await setupSandbox({ threads: 2 });
  const grants = grantsSchema.parse({ exec: [["sleep", "0.3"]] });
  const a = await t.sandbox.load(await compileWat("exec"), { name: "a", grants, limits });
  const b = await t.sandbox.load(await compileWat("exec"), { name: "b", grants, limits });
  const started = performance.now();
  const argv = { argv: ["sleep", "0.3"] };
  const results = await Promise.all([
    a.callJson("mr_exec", argv),
    b.callJson("mr_exec", argv),
    a.callJson("mr_exec", argv),
  ]);
  const elapsed = performance.now() - started;
  for (const r of results) assertEquals((r as { code: number }).code, 0);
  // a's two calls are serialised (≥ 0.6 s); b ran beside them (well under 0.9 s)
  assert(elapsed >= 550, `elapsed ${elapsed}`);
  assert(elapsed < 880, `elapsed ${elapsed}`);
});

Deno.test("sandbox - inspectModule lists exports, imports and host functions", async () => {
  const info = await inspectModule(await compileWat("network"));
  assert(info.exports.includes("mr_event"));
  assert(info.imports.includes("extism:host/user.mr_event"));
  assertEquals(info.hostFunctions.sort(), [
    "mr_event",
    "mr_facts",
    "mr_governor",
    "mr_is_leader",
    "mr_kv_get",
    "mr_log",
    "mr_metric",
    "mr_submit",
    "mr_transition",
  ]);
  assertEquals(info.abiProblems, [
    "Module exports none of mr_describe, mr_init, mr_reconcile, mr_command, mr_shutdown",
  ]);
  const bad = await inspectModule(await compileWat("unknown_import"));
  assertMatch(bad.abiProblems.join(";"), /mr_format_disk/);
});

Deno.test("sandbox - closing the sandbox during a call rejects the call and stops its host work", async () => {
  const t = await setupSandbox();
  try {
    const p = await t.sandbox.load(await compileWat("exec"), {
      name: "closing",
      grants: grantsSchema.parse({ exec: [["sleep", "30"]] }),
      limits: { ...limits, timeout_ms: 800 },
    });
    const started = Date.now();
    const call = p.callJson("mr_exec", { argv: ["sleep", "30"] });
    await new Promise((r) => setTimeout(r, 100));
    await t.sandbox.close();
    const err = await assertRejects(() => call, SandboxError);
    assertEquals((err as SandboxError).code, "trap");
    assert(Date.now() - started < 2_000);
    await assertRejects(
      () => t.sandbox.load(new Uint8Array(), { name: "x", grants: noGrants, limits }),
      Error,
    );
  } finally {
    await t[Symbol.asyncDispose]();
  }
});

Deno.test("sandbox - many plugins on three threads answer many concurrent calls correctly", async () => {
  await using t = await setupSandbox({ threads: 3 });
  const wasm = await compileWat("echo");
  const plugins = await Promise.all(
    Array.from(
      { length: 10 },
      (_, i) => t.sandbox.load(wasm, { name: `echo-${i}`, grants: noGrants, limits }),
    ),
  );
  const calls = Array.from({ length: 200 }, (_, i) => {
    const p = plugins[i % plugins.length]!;
    const input = `${p.name}:${i}:${"x".repeat(i)}`;
    return p.call("echo", input).then((out) => assertEquals(text(out), input));
  });
  await Promise.all(calls);
  await Promise.all(plugins.map((p) => p.close()));
});

Deno.test("sandbox - a non-zero export return code is a PluginError", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("return_code"), {
    name: "rc",
    grants: noGrants,
    limits,
  });
  const err = await assertRejects(() => p.call("fails"), PluginError);
  assertMatch((err as Error).message, /returned 3/);
  assertEquals(await p.callJson("ok"), 1);
});
