/**
 * Hostile modules against the sandbox host process: table bombs, host-reply floods, start
 * functions that never return, runaways the metering cannot stop (a test-only unmetered
 * load), a host process over its memory ceiling and one killed from outside. Each is
 * stopped with the right code, the process is reclaimed, and the neighbours keep working.
 */
import { assert, assertEquals, assertRejects } from "@std/assert";
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { SandboxError } from "../src/plugins/mod.ts";
import type { AgentPlugin, Sandbox, SandboxErrorCode } from "../src/plugins/mod.ts";
import { compileWat, setupSandbox } from "./helpers/wat.ts";

const noGrants = grantsSchema.parse({});
const limits = limitsSchema.parse({ fuel: 50_000_000, timeout_ms: 1_000, memory_mb: 1 });
const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function stop(p: Promise<unknown>, code: SandboxErrorCode): Promise<SandboxError> {
  const err = await assertRejects(() => p, SandboxError);
  assertEquals((err as SandboxError).code, code, (err as Error).message);
  return err as SandboxError;
}

/** utime + stime of a process in clock ticks, or null when it is gone. */
function cpuTicks(pid: number): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

function onlyPid(sandbox: Sandbox): number {
  const procs = sandbox.processes();
  assertEquals(procs.length, 1);
  return procs[0]!.pid;
}

/** Asserts `pid` uses (almost) no CPU over one second, within 2 s of now. */
async function assertIdle(pid: number): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const a = cpuTicks(pid);
    await new Promise((r) => setTimeout(r, 1000));
    const b = cpuTicks(pid);
    if (a === null || b === null) return; // gone: idle for certain
    if (b - a <= 10) return; // ≤ 10 % of one core
  }
  throw new Error(`process ${pid} still busy 2 s after the stop`);
}

Deno.test("hostile - eight 10M-entry tables with memory_mb 1 are refused with memory_limit", async () => {
  await using t = await setupSandbox();
  const err = await stop(
    t.sandbox.load(await compileWat("tables"), { name: "tables", grants: noGrants, limits }),
    "memory_limit",
  );
  assert(err.message.includes("Tables need"), err.message);
  // nothing was allocated: a process may not even have started
  for (const p of t.sandbox.processes()) assert(p.rss_mb < 200, `rss ${p.rss_mb} MB`);
});

Deno.test("hostile - table.grow stops at the cap memory_mb leaves", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("table_grow"), {
    name: "table-grow",
    grants: noGrants,
    limits: { ...limits, memory_mb: 1 },
  });
  const size = Number(text(await p.call("grow")));
  assert(size >= 1 && size <= 1 + 1024, `table grew to ${size} entries`);
  const peak = t.sandbox.processes()[0]!.rss_mb;
  assert(peak < 200, `host process RSS ${peak} MB`);
});

Deno.test("hostile - host-reply floods stop with memory_limit or the host-call cap", async () => {
  await using t = await setupSandbox();
  const file = `${t.dir}/big.txt`;
  await Deno.writeTextFile(file, "x".repeat(1024 * 1024 - 64));
  const p = await t.sandbox.load(await compileWat("host_flood"), {
    name: "flood",
    grants: grantsSchema.parse({ files: { read: [`${t.dir}/**`] } }),
    limits: { ...limits, memory_mb: 1, timeout_ms: 5_000 },
  });
  // a granted ~1 MB file: the first reply alone does not fit beside linear memory
  const e1 = await stop(p.call("read_loop", JSON.stringify({ path: file })), "memory_limit");
  assert(e1.message.includes("mr_file_read"), e1.message);
  // a 60 KB state value (under mr_state_put's 64 KiB limit) read in a loop: memory_mb
  // after a few replies
  const big = JSON.stringify({ key: "k", value: "y".repeat(60_000) });
  assertEquals(text(await p.call("put", big)), "");
  await stop(p.call("get_loop", JSON.stringify({ key: "k" })), "memory_limit");
  // freeing each reply does not give its budget back
  await stop(p.call("get_free_loop", JSON.stringify({ key: "k" })), "memory_limit");
  // tiny replies: the per-call host-call cap
  const e2 = await stop(p.call("get_loop", JSON.stringify({ key: "none" })), "fuel_exhausted");
  assert(e2.message.includes("host-function calls"), e2.message);
  assertEquals(text(await p.call("ok")), "");
  const rss = t.sandbox.processes()[0]!.rss_mb;
  assert(rss < 250, `host process RSS ${rss} MB`);
});

Deno.test("hostile - a start function that never returns: metered, stopped at its first call's deadline; unmetered, killed at load", async () => {
  await using t = await setupSandbox();
  const wasm = await compileWat("start_hang");
  const lim = { ...limits, timeout_ms: 1_000 };
  // the instrumenter runs the start function under the first call's fuel and deadline
  const metered = await t.sandbox.load(wasm, { name: "hang", grants: noGrants, limits: lim });
  let t0 = Date.now();
  const e0 = await assertRejects(() => metered.call("ok"), SandboxError);
  assert(["timeout", "fuel_exhausted"].includes((e0 as SandboxError).code), String(e0));
  assert(Date.now() - t0 < 1_000 + 1_000, `took ${Date.now() - t0} ms`);
  // without metering it runs at instantiation: the load's deadline kills the process
  t0 = Date.now();
  const e = await stop(
    t.sandbox.load(wasm, { name: "hang2", grants: noGrants, limits: lim, unmetered: true }),
    "timeout",
  );
  assert(e.message.includes("killed"), e.message);
  assert(Date.now() - t0 < 1_000 + 1_000, `took ${Date.now() - t0} ms`);
  // the pool serves the next load
  const ok = await t.sandbox.load(await compileWat("noop"), {
    name: "ok",
    grants: noGrants,
    limits,
  });
  assertEquals(await ok.callJson("noop"), null);
});

Deno.test("hostile - an unmetered runaway is killed at deadline + grace, its CPU reclaimed, its neighbour reloaded", async () => {
  await using t = await setupSandbox();
  const neighbour = await t.sandbox.load(await compileWat("echo"), {
    name: "neighbour",
    grants: noGrants,
    limits,
  });
  const runaway = await t.sandbox.load(await compileWat("runaway"), {
    name: "runaway",
    grants: noGrants,
    limits: { ...limits, timeout_ms: 800 },
    unmetered: true,
  });
  const before = onlyPid(t.sandbox);
  const t0 = Date.now();
  // the neighbour keeps calling while the runaway spins; its calls wait, none fails
  let running = true;
  const seen: number[] = [];
  const loop = (async () => {
    while (running) {
      assertEquals(text(await neighbour.call("echo", "hi")), "hi");
      seen.push(neighbour.lastCall!.queued_ms);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const err = await stop(runaway.call("spin"), "timeout");
  const took = Date.now() - t0;
  assert(took < 800 + 1_000, `stopped after ${took} ms`);
  assert(err.message.includes("killed"), err.message);
  assertEquals(cpuTicks(before), null, "the killed process is gone");
  await new Promise((r) => setTimeout(r, 500));
  running = false;
  await loop;
  const after = onlyPid(t.sandbox);
  assert(after !== before);
  await assertIdle(after);
  assert(seen.length >= 2, `neighbour made ${seen.length} calls`);
  assert(Math.max(...seen) > 0, "one neighbour call waited for the runaway");
  // both work afterwards: the culprit is reloaded on its next call
  assertEquals(text(await neighbour.call("echo", "again")), "again");
  assertEquals(text(await runaway.call("ok")), "");
  assertEquals(t.sandbox.processes()[0]!.restarts, 1);
  // the neighbour's wait behind the kill was reported apart from its run time
  assert(t.logs.some((l) => l.includes("waited in the sandbox queue") && l.includes("neighbour")));
});

Deno.test("hostile - three kills quarantine the agent; the refusal says so", async () => {
  await using t = await setupSandbox({ killGraceMs: 100 });
  const wasm = await compileWat("runaway");
  const opts = {
    name: "repeat",
    grants: noGrants,
    limits: { ...limits, timeout_ms: 200 },
    unmetered: true,
  };
  const p = await t.sandbox.load(wasm, opts);
  for (let i = 0; i < 3; i++) await stop(p.call("spin"), "timeout");
  const q = await stop(p.call("ok"), "timeout");
  assert(q.quarantined && q.message.includes("quarantined"), q.message);
  const q2 = await stop(t.sandbox.load(wasm, opts), "timeout");
  assert(q2.quarantined);
  assert(t.logs.some((l) => l.includes('"quarantined":true')));
});

Deno.test("hostile - memory.fill runaway is stopped within deadline + 1 s and the CPU returns to idle", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("bulk_fill"), {
    name: "fill",
    grants: noGrants,
    limits: { ...limits, memory_mb: 40, timeout_ms: 1_000, fuel: 1_000_000_000 },
  });
  const t0 = Date.now();
  const err = await assertRejects(() => p.call("fill"), SandboxError);
  assert(["timeout", "fuel_exhausted"].includes((err as SandboxError).code), String(err));
  assert(Date.now() - t0 < 2_000, `stopped after ${Date.now() - t0} ms`);
  await assertIdle(onlyPid(t.sandbox));
});

Deno.test("hostile - a host process over its memory ceiling is killed: memory_limit for the agent running", async () => {
  await using t = await setupSandbox({ processMemoryMb: 200 });
  const other = await t.sandbox.load(await compileWat("echo"), {
    name: "other",
    grants: noGrants,
    limits,
  });
  const hog = await t.sandbox.load(await compileWat("mem_hog"), {
    name: "hog",
    grants: noGrants,
    // fuel for the 250 MiB grow and fill (charged by length before they run: ~130 M)
    limits: { ...limits, memory_mb: 1024, timeout_ms: 10_000, fuel: 1_000_000_000 },
  });
  const err = await stop(hog.call("hog", new Uint8Array([250])), "memory_limit"); // 250 MiB
  assert(err.message.includes("ceiling"), err.message);
  assertEquals(text(await other.call("echo", "still here")), "still here");
  const rss = t.sandbox.processes()[0]!.rss_mb;
  assert(rss < 200, `new process RSS ${rss} MB`);
});

Deno.test("hostile - a host process killed from outside: the call in flight is a trap, the next works", async () => {
  await using t = await setupSandbox();
  const p: AgentPlugin = await t.sandbox.load(await compileWat("exec"), {
    name: "sleeper",
    grants: grantsSchema.parse({ exec: [["sleep", "5"]] }),
    limits: { ...limits, timeout_ms: 8_000 },
  });
  const pid = onlyPid(t.sandbox);
  const call = p.callJson("mr_exec", { argv: ["sleep", "5"] });
  await new Promise((r) => setTimeout(r, 300));
  Deno.kill(pid, "SIGKILL");
  const err = await stop(call, "trap");
  assert(err.message.includes("unexpectedly"), err.message);
  const idle = await t.sandbox.load(await compileWat("echo"), {
    name: "e",
    grants: noGrants,
    limits,
  });
  assertEquals(text(await idle.call("echo", "x")), "x");
  Deno.kill(onlyPid(t.sandbox), "SIGKILL"); // idle this time: reloaded in the background
  await new Promise((r) => setTimeout(r, 300));
  assertEquals(text(await idle.call("echo", "y")), "y");
});

Deno.test("hostile - a daemon killed during a long call leaves no sandbox host process behind", async () => {
  const root = new URL("../", import.meta.url);
  const code = `
    const { createSandbox, createPrintingServices } = await import("${root}src/plugins/mod.ts");
    const { silentLogger } = await import("${root}src/log/logger.ts");
    const { compileWat } = await import("${root}tests/helpers/wat.ts");
    const sb = await createSandbox({ stateDir: await Deno.makeTempDir(),
      services: createPrintingServices(() => {}), logger: silentLogger });
    const p = await sb.load(await compileWat("runaway"), { name: "long", grants: {},
      limits: { fuel: 1e15, timeout_ms: 600000 } });
    void p.call("spin").catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
    console.log(sb.processes()[0].pid);
    await new Promise(() => {});
  `;
  const daemon = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", new URL("deno.json", root).pathname, code],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = daemon.stdout.getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const pid = Number(out.trim());
  assert(pid > 0, `host pid: ${out}`);
  const busy0 = cpuTicks(pid)!;
  await new Promise((r) => setTimeout(r, 300));
  assert(cpuTicks(pid)! > busy0, "the host process is running the call");
  daemon.kill("SIGKILL");
  await daemon.status;
  await daemon.stdout.cancel().catch(() => {});
  let gone = false;
  for (let i = 0; i < 40 && !gone; i++) {
    await new Promise((r) => setTimeout(r, 50));
    gone = cpuTicks(pid) === null || Deno.readTextFileSync(`/proc/${pid}/stat`).includes(") Z ");
  }
  assert(gone, "the orphaned host process ended within 2 s");
});
