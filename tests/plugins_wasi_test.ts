/**
 * WASI and the Extism kernel in the sandbox (real runtime threads, instrumented modules):
 * reactors and commands, stdout as log lines, proc_exit, spins stopped by fuel or the
 * deadline, config_get, vars, error_set, http_request granted and denied, no memory.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { inspectModule, PluginError, SandboxError } from "../src/plugins/mod.ts";
import { compileWat, setupSandbox } from "./helpers/wat.ts";

const noGrants = grantsSchema.parse({});
const limits = limitsSchema.parse({ fuel: 50_000_000, timeout_ms: 3_000, memory_mb: 2 });
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const u64 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset).getBigUint64(0, true);
const logsOf = (logs: string[]) => logs.map((l) => JSON.parse(l) as Record<string, unknown>);

/** Log lines travel by message, results through shared memory: wait for a line. */
async function waitLog(logs: string[], needle: string): Promise<void> {
  for (let i = 0; i < 200 && !logs.some((l) => l.includes(needle)); i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  assert(logs.some((l) => l.includes(needle)), `no log line with ${needle}: ${logs.join("\n")}`);
}

Deno.test("wasi sandbox - a reactor's _initialize runs once at load; stdout/stderr are log lines", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("wasi_reactor"), {
    name: "reactor",
    grants: noGrants,
    limits,
  });
  assertEquals(text(await p.call("inited")), "1");
  assertEquals(text(await p.call("hello")), "ok");
  await waitLog(t.logs, "hello stderr");
  const logs = logsOf(t.logs);
  const init = logs.find((l) => l["msg"] === "init done");
  assertEquals(init?.["agent"], "reactor");
  assertEquals(init?.["stream"], "stdout");
  assertEquals(init?.["level"], "info");
  assertEquals(logs.find((l) => l["msg"] === "hello stdout")?.["level"], "info");
  assertEquals(logs.find((l) => l["msg"] === "hello stderr")?.["level"], "warn");
  assertEquals(logs.filter((l) => l["msg"] === "init done").length, 1);
});

Deno.test("wasi sandbox - environ is config.env only; proc_exit(0) keeps the output, non-zero is a plugin error", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("wasi_reactor"), {
    name: "env-agent",
    grants: noGrants,
    limits,
    config: { threshold: 3, env: { MODE: "strict", RETRIES: 2 } },
  });
  assertEquals(text(await p.call("env")), "MODE=strict\0RETRIES=2\0");
  assertEquals(text(await p.call("exit0")), "so far");
  const err = await assertRejects(() => p.call("exit7"), PluginError);
  assertMatch(err.message, /exited with code 7/);
  // the plugin still works (re-instantiated: _initialize ran again)
  assertEquals(text(await p.call("hello")), "ok");
  assertEquals(text(await p.call("sleep")), "ok");
  const nap = await assertRejects(
    () => p.call("nap"),
    SandboxError,
  );
  assertEquals((nap as SandboxError).code, "timeout");
  assertEquals(text(await p.call("hello")), "ok");
});

Deno.test("wasi sandbox - a command's _start runs as an export; spins stop with fuel or the deadline", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("wasi_command"), {
    name: "cmd",
    grants: noGrants,
    limits: { ...limits, fuel: 5_000_000 },
  });
  assertEquals((await p.call("_start")).length, 0);
  await waitLog(t.logs, "hello from _start");
  const spin = await assertRejects(() => p.call("spin"), SandboxError);
  assertEquals((spin as SandboxError).code, "fuel_exhausted");
  const slow = await t.sandbox.load(await compileWat("wasi_command"), {
    name: "cmd-slow",
    grants: noGrants,
    limits: { ...limits, fuel: 1e15, timeout_ms: 300 },
  });
  const e2 = await assertRejects(() => slow.call("spin"), SandboxError);
  assertEquals((e2 as SandboxError).code, "timeout");
  assertEquals((await p.call("_start")).length, 0);
  // a spin in _initialize stops the first call (where the instrumenter runs it) with the
  // stop code, and the next call stops the same way
  for (
    const [lim, code] of [[{ fuel: 5_000_000 }, "fuel_exhausted"], [
      { fuel: 1e15, timeout_ms: 300 },
      "timeout",
    ]] as const
  ) {
    const spinner = await t.sandbox.load(await compileWat("wasi_spin_init"), {
      name: "spin-init",
      grants: noGrants,
      limits: { ...limits, ...lim },
    });
    for (let i = 0; i < 2; i++) {
      const e = await assertRejects(() => spinner.call("mr_reconcile"), SandboxError);
      assertEquals((e as SandboxError).code, code);
    }
  }
  assertEquals((await p.call("_start")).length, 0); // the thread is healthy
});

Deno.test("wasi sandbox - load refuses an unknown WASI function by name; inspect lists WASI imports", async () => {
  await using t = await setupSandbox();
  const e = await assertRejects(
    async () =>
      await t.sandbox.load(await compileWat("wasi_unknown"), {
        name: "x",
        grants: noGrants,
        limits,
      }),
    SandboxError,
  );
  assertEquals((e as SandboxError).code, "invalid_module");
  assertMatch(e.message, /wasi_snapshot_preview1\.fd_frobnicate/);
  for (
    const [fixture, re] of [
      ["wasi_badsig", /fd_write" imported as \(iIii>i\), preview 1 has \(iiii>i\)/],
      ["wasi_nomem", /imports WASI but does not export its memory/],
    ] as const
  ) {
    const e2 = await assertRejects(
      async () =>
        await t.sandbox.load(await compileWat(fixture), { name: "x", grants: noGrants, limits }),
      SandboxError,
    );
    assertEquals((e2 as SandboxError).code, "invalid_module");
    assertMatch(e2.message, re);
  }
  // every preview 1 function with its own signature passes
  const all = await inspectModule(await compileWat("wasi_all"));
  assertEquals(all.wasiFunctions.length, 46);
  assertEquals(all.abiProblems.filter((p) => !p.startsWith("Module exports none of")), []);
  const info = await inspectModule(await compileWat("wasi_reactor"));
  assertEquals(info.abiProblems.filter((p) => !p.startsWith("Module exports none of")), []);
  assertEquals(info.wasiFunctions.sort(), [
    "environ_get",
    "environ_sizes_get",
    "fd_write",
    "poll_oneoff",
    "proc_exit",
  ]);
});

Deno.test("kernel - config_get, vars across calls with a cap, error_set, log levels", async () => {
  await using t = await setupSandbox();
  const load = () =>
    t.sandbox.load(Uint8Array.from(wasm), {
      name: "kernel",
      grants: noGrants,
      limits: { ...limits, memory_mb: 8, fuel: 2_000_000_000 },
      config: { name: "disk", threshold: 90, tags: ["a"], nothing: null },
    });
  const wasm = await compileWat("kernel");
  const p = await load();
  assertEquals(text(await p.call("config", "name")), "disk");
  assertEquals(text(await p.call("config", "threshold")), "90");
  assertEquals(text(await p.call("config", "tags")), '["a"]');
  assertEquals(text(await p.call("config", "nothing")), "null");
  assertEquals((await p.call("config", "absent")).length, 0);
  assertEquals(u64(await p.call("incr")), 1n);
  assertEquals(u64(await p.call("incr")), 2n);
  assertEquals(u64(await p.call("incr")), 3n);
  const big = await assertRejects(
    () => p.call("big", new Uint8Array(1024 * 1024 + 1)),
    PluginError,
  );
  assertMatch(big.message, /cap is 1048576/);
  assertEquals(u64(await p.call("incr")), 4n); // kept after the refused var_set
  const fail = await assertRejects(() => p.call("fail"), PluginError);
  assertMatch(fail.message, /bad thing happened/);
  await p.call("logs");
  await waitLog(t.logs, "kernel debug");
  const levels = Object.fromEntries(
    logsOf(t.logs).filter((l) => String(l["msg"]).startsWith("kernel ")).map((
      l,
    ) => [l["msg"], l["level"]]),
  );
  assertEquals(levels, {
    "kernel info": "info",
    "kernel warn": "warn",
    "kernel error": "error",
    "kernel debug": "debug",
  });
  // a reload starts with no vars
  await p.close();
  const again = await load();
  assertEquals(u64(await again.call("incr")), 1n);
});

Deno.test("kernel - http_request under the http grant; denied host is a capability_denied stop with an audit line", async () => {
  await using server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    (req) => new Response(`got ${req.method} ${new URL(req.url).pathname}`, { status: 201 }),
  );
  const port = server.addr.port;
  await using t = await setupSandbox();
  const wasm = await compileWat("kernel");
  const p = await t.sandbox.load(wasm, {
    name: "http-agent",
    grants: grantsSchema.parse({ http: [`127.0.0.1:${port}`] }),
    limits,
  });
  const req = (url: string) => JSON.stringify({ url, method: "GET" });
  assertEquals(text(await p.call("http", req(`http://127.0.0.1:${port}/x`))), "got GET /x");
  assertEquals(u64(await p.call("status")), 201n);
  const e = await assertRejects(
    () => p.call("http", req(`http://127.0.0.1:1/secret`)),
    SandboxError,
  );
  assertEquals((e as SandboxError).code, "capability_denied");
  assertMatch(e.message, /127\.0\.0\.1:1/);
  await waitLog(t.logs, '"audit":true');
  assert(t.logs.some((l) => l.includes('"audit":true') && l.includes("127.0.0.1:1")));
  const bad = await assertRejects(() => p.call("http", "not json"), PluginError);
  assertMatch(bad.message, /not JSON/);
  // without the grant the same module's request is refused too
  const none = await t.sandbox.load(wasm, { name: "no-http", grants: noGrants, limits });
  const e2 = await assertRejects(
    () => none.call("http", req(`http://127.0.0.1:${port}/x`)),
    SandboxError,
  );
  assertEquals((e2 as SandboxError).code, "capability_denied");
  assertEquals(text(await p.call("http", req(`http://127.0.0.1:${port}/y`))), "got GET /y");
});

Deno.test("kernel - a module without memory loads and runs", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("no_memory"), {
    name: "no-mem",
    grants: noGrants,
    limits,
  });
  assertEquals(await p.callJson("mr_reconcile"), null);
});
