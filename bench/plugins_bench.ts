/**
 * Sandbox benchmarks (issue 2): no-op call latency, host-function round trip from the sandbox
 * host process, and RSS per idle plugin (metering overhead and load times:
 * bench/instrument_bench.ts). Percentiles deno bench does not print (p50) are printed before the table.
 */
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { silentLogger } from "../src/log/logger.ts";
import { createPrintingServices, createSandbox } from "../src/plugins/mod.ts";
import { compileWat } from "../tests/helpers/wat.ts";

const grants = grantsSchema.parse({});
const limits = limitsSchema.parse({});
const stateDir = await Deno.makeTempDir({ prefix: "mr-bench-" });
const sandbox = await createSandbox({
  stateDir,
  services: createPrintingServices(() => {}),
  logger: silentLogger,
});
const noop = await sandbox.load(await compileWat("noop"), { name: "noop", grants, limits });
const loop = await sandbox.load(await compileWat("host_loop"), { name: "loop", grants, limits });

function pct(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
}
const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;

// --- percentiles measured directly --------------------------------------------------------
{
  const samples: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const t = performance.now();
    await noop.call("noop");
    if (i >= 500) samples.push(performance.now() - t);
  }
  console.log(`no-op call: p50 ${us(pct(samples, 0.5))}, p99 ${us(pct(samples, 0.99))}`);
  const host: number[] = [];
  for (let i = 0; i < 60; i++) {
    const t = performance.now();
    await loop.call("leader_x100");
    if (i >= 10) host.push((performance.now() - t) / 100);
  }
  console.log(
    `host round trip (mr_is_leader from the sandbox host process): p50 ${us(pct(host, 0.5))}, p99 ${
      us(pct(host, 0.99))
    } (per call of 100)`,
  );
}

// --- RSS of a process with 1 and with 20 idle plugins -------------------------------------
// Measured in one child process (1 plugin loaded, then 19 more) so both readings share the
// runtime, the sandbox thread and the instrumentation worker; each after a full GC.
async function rssOneAndTwenty(): Promise<[number, number]> {
  const mod = new URL("../src/plugins/mod.ts", import.meta.url).href;
  const wat = new URL("../tests/helpers/wat.ts", import.meta.url).href;
  const log = new URL("../src/log/logger.ts", import.meta.url).href;
  const code = `
    const { createSandbox, createPrintingServices } = await import("${mod}");
    const { compileWat } = await import("${wat}");
    const { silentLogger } = await import("${log}");
    const dir = await Deno.makeTempDir();
    const sb = await createSandbox({ stateDir: dir, services: createPrintingServices(() => {}), logger: silentLogger });
    const wasm = await compileWat("echo");
    const ps = [];
    const settle = async () => {
      for (const p of ps) await p.call("echo", "x");
      await new Promise((r) => setTimeout(r, 500));
      (globalThis.gc ?? (() => {}))();
      await new Promise((r) => setTimeout(r, 200));
      // the daemon side plus its sandbox host process (RSS summed: shared pages count twice)
      return Deno.memoryUsage().rss + sb.processes().reduce((s, p) => s + p.rss_mb * 1048576, 0);
    };
    ps.push(await sb.load(wasm, { name: "p0", grants: {}, limits: {} }));
    const one = await settle();
    for (let i = 1; i < 20; i++) ps.push(await sb.load(wasm, { name: "p" + i, grants: {}, limits: {} }));
    const twenty = await settle();
    console.log(JSON.stringify([one, twenty]));
    await sb.close();
    await Deno.remove(dir, { recursive: true });
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", code],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout).trim());
}
{
  const [one, twenty] = await rssOneAndTwenty();
  const mb = (b: number) => (b / 1048576).toFixed(1);
  console.log(
    `RSS (process + its sandbox host process): 1 idle plugin ${mb(one)} MB, 20 idle plugins ${
      mb(twenty)
    } MB, ` +
      `${mb((twenty - one) / 19)} MB per extra plugin`,
  );
}

// --- deno bench ---------------------------------------------------------------------------
Deno.bench("sandbox - no-op call", { group: "call", baseline: true }, async () => {
  await noop.call("noop");
});
Deno.bench("sandbox - 100 host round trips (mr_is_leader)", { group: "call" }, async () => {
  await loop.call("leader_x100");
});

// Fuel-metering overhead and module load times: bench/instrument_bench.ts.

globalThis.addEventListener("unload", () => {
  void sandbox.close();
  Deno.removeSync(stateDir, { recursive: true });
});
