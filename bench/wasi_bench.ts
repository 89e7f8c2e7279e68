/**
 * WASI costs against an mr_log round trip, measured in one run (issue 13): per operation,
 * from loops of 100 in one export (tests/fixtures/wat/wasi_bench.wat), through the real
 * sandbox (host process). fd_write lines are measured on fresh plugins (one call each) so
 * the per-plugin line rate limit never drops them: every line is emitted as a log line.
 * Target: fd_write of one line and clock_time_get each ≤ 2× mr_log.
 */
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { createLogger } from "../src/log/logger.ts";
import { createPrintingServices, createSandbox } from "../src/plugins/mod.ts";
import { compileWat } from "../tests/helpers/wat.ts";

const grants = grantsSchema.parse({});
const limits = limitsSchema.parse({});
const stateDir = await Deno.makeTempDir({ prefix: "mr-bench-wasi-" });
let lines = 0;
// a logger that formats every line (as the daemon's does) and counts it
const logger = createLogger({ level: "info", write: () => void lines++ });
const sandbox = await createSandbox({
  stateDir,
  services: createPrintingServices(() => {}),
  logger,
});
const wasm = await compileWat("wasi_bench");
const one = await sandbox.load(wasm, { name: "bench", grants, limits });
const fresh = [];
for (let i = 0; i < 21; i++) {
  fresh.push(await sandbox.load(wasm, { name: `bench-${i}`, grants, limits }));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
async function perOp(fn: () => Promise<unknown>, n: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    samples.push((performance.now() - t) / 100);
  }
  return median(samples.slice(Math.floor(n / 5)));
}

const log = await perOp(() => one.call("log_x100"), 40);
const clock = await perOp(() => one.call("clock_x100"), 40);
let k = 0;
const write = await perOp(() => fresh[k++]!.call("write_x100"), 21);
const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;
console.log(
  `mr_log round trip ${us(log)}; WASI fd_write (one line) ${us(write)} = ${
    (write / log).toFixed(2)
  }×; clock_time_get ${us(clock)} = ${(clock / log).toFixed(3)}× (target ≤ 2×; ${lines} log lines)`,
);

Deno.bench("wasi - 100 × mr_log", { group: "wasi" }, async () => {
  await one.call("log_x100");
});
Deno.bench("wasi - 100 × clock_time_get", { group: "wasi" }, async () => {
  await one.call("clock_x100");
});

globalThis.addEventListener("unload", () => {
  void sandbox.close();
});
