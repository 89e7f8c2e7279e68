/**
 * Instrumenter benchmarks (issue 12 §1, §7): metering overhead on a tight add/mul loop and
 * on an FNV-1a hash loop (instrumented vs not, same run, both warmed up so V8 has tiered
 * them up), instrumenting a ~1 MB module, and `sandbox.load` of it the first time (empty
 * instrument cache) and from the cache.
 *
 * Run: `deno bench -A --no-check bench/instrument_bench.ts`. The machine is shared: take
 * the best of several runs.
 */
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { silentLogger } from "../src/log/logger.ts";
import { createPrintingServices, createSandbox } from "../src/plugins/mod.ts";
import { instrumentModule, TICK_MODULE, TICK_NAME } from "../src/plugins/instrument.ts";
import { INSTRUMENT_CACHE_DIR } from "../src/plugins/instrument_cache.ts";
import { compileWat } from "../tests/helpers/wat.ts";

// --- metering overhead --------------------------------------------------------------------
const runaway = await compileWat("runaway");
const kernel = new Proxy({}, { get: () => () => 0n });
const imports = { "extism:host/env": kernel, [TICK_MODULE]: { [TICK_NAME]: () => 1 << 20 } };
type Loops = { compute: () => number; hash: () => number; __mr_fuel_reset: () => void };
const plain = (await WebAssembly.instantiate(runaway as Uint8Array<ArrayBuffer>, imports))
  .instance.exports as Loops;
const metered = (await WebAssembly.instantiate(
  instrumentModule(runaway, { maxPages: 512 }) as Uint8Array<ArrayBuffer>,
  imports,
)).instance.exports as Loops;

// Ratios measured directly too: plain and metered alternate, best of 40 each, which a
// shared machine's load spikes distort far less than deno bench's averages.
function best(f: () => void, n = 40): number {
  let min = Infinity;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    f();
    min = Math.min(min, performance.now() - t);
  }
  return min;
}
{
  const rounds: [number, number, number, number][] = [];
  for (let r = 0; r < 5; r++) {
    rounds.push([
      best(() => plain.compute()),
      best(() => (metered.__mr_fuel_reset(), metered.compute())),
      best(() => plain.hash()),
      best(() => (metered.__mr_fuel_reset(), metered.hash())),
    ]);
  }
  const min = (k: number) => Math.min(...rounds.map((x) => x[k]!));
  console.log(
    `metering overhead (best of 5×40): tight loop ${(min(1) / min(0)).toFixed(2)}× ` +
      `(${min(0).toFixed(2)} vs ${min(1).toFixed(2)} ms), FNV-1a hash ${
        (min(3) / min(2)).toFixed(2)
      }× (${min(2).toFixed(2)} vs ${min(3).toFixed(2)} ms)`,
  );
}

Deno.bench("fuel - compute loop, not instrumented", { group: "fuel", baseline: true }, () => {
  plain.compute();
});
Deno.bench("fuel - compute loop, instrumented", { group: "fuel" }, () => {
  metered.__mr_fuel_reset();
  metered.compute();
});
Deno.bench("fuel - FNV-1a hash of 64 KiB ×40, not instrumented", {
  group: "fuel-hash",
  baseline: true,
}, () => {
  plain.hash();
});
Deno.bench("fuel - FNV-1a hash of 64 KiB ×40, instrumented", { group: "fuel-hash" }, () => {
  metered.__mr_fuel_reset();
  metered.hash();
});

// --- deadline-check interval -----------------------------------------------------------------
// Time per refill chunk (2^18 units, the runtime's) of each hostile loop class on its first
// call, i.e. in V8's baseline tier where a runaway call stays: how long a call can run
// between two deadline checks.
{
  const classes: [string, string[]][] = [
    ["runaway", ["spin"]],
    ["hostile_bulk", ["fill", "copy", "init", "grow0"]],
    ["hostile_table", ["fill", "copy", "init", "grow"]],
    ["hostile_control", ["br_table", "tail"]],
  ];
  const budget = 20_000_000;
  const rows: string[] = [];
  let worst = 0;
  for (const [fixture, fns] of classes) {
    const bytes = instrumentModule(await compileWat(fixture), { maxPages: 1024 });
    for (const fn of fns) {
      let left = budget;
      const refill = () => {
        const c = Math.min(1 << 18, left);
        left -= c;
        return c;
      };
      const { instance } = await WebAssembly.instantiate(bytes as Uint8Array<ArrayBuffer>, {
        "extism:host/env": kernel,
        [TICK_MODULE]: { [TICK_NAME]: refill },
      });
      const t = performance.now();
      try {
        (instance.exports[fn] as () => number)();
      } catch { /* stopped when the budget is spent */ }
      const perChunk = (performance.now() - t) / (budget / (1 << 18));
      worst = Math.max(worst, perChunk);
      rows.push(`${fixture}.${fn} ${perChunk.toFixed(2)}`);
    }
  }
  console.log(`ms per refill chunk (first call): worst ${worst.toFixed(2)}; ${rows.join(", ")}`);
}

// --- load of a ~1 MB module -----------------------------------------------------------------
/** ~1 MB: 3,300 functions with a loop of 30 multiply-adds each. */
function bigWat(): string {
  const fns: string[] = [];
  for (let i = 0; i < 3300; i++) {
    const body = Array.from(
      { length: 30 },
      (_, k) =>
        `(local.set $a (i32.add (i32.mul (local.get $a) (i32.const ${k + 3})) (local.get $i)))`,
    ).join(" ");
    fns.push(
      `(func $f${i} (param $n i32) (result i32) (local $i i32) (local $a i32)
        (loop $l ${body} (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n)))) (local.get $a))`,
    );
  }
  return `(module (memory (export "memory") 1) ${fns.join("\n")}
    (func (export "mr_reconcile") (result i32) (drop (call $f0 (i32.const 1))) (i32.const 0)))`;
}
const big = await compileWat(bigWat());
console.log(`large module: ${(big.length / 1048576).toFixed(2)} MB`);

const stateDir = await Deno.makeTempDir({ prefix: "mr-bench-instrument-" });
const sandbox = await createSandbox({
  stateDir,
  services: createPrintingServices(() => {}),
  logger: silentLogger,
});
const grants = grantsSchema.parse({});
const limits = limitsSchema.parse({});
// the host process is up before the timings
await (await sandbox.load(await compileWat("noop"), { name: "noop", grants, limits })).close();

{
  const first: number[] = [];
  const cached: number[] = [];
  const inst: number[] = [];
  for (let i = 0; i < 8; i++) {
    let t = performance.now();
    instrumentModule(big, { maxPages: 512 });
    inst.push(performance.now() - t);
    await Deno.remove(`${stateDir}/${INSTRUMENT_CACHE_DIR}`, { recursive: true }).catch(() => {});
    t = performance.now();
    await (await sandbox.load(big, { name: "big", grants, limits })).close();
    first.push(performance.now() - t);
    t = performance.now();
    await (await sandbox.load(big, { name: "big", grants, limits })).close();
    cached.push(performance.now() - t);
  }
  const fmt = (x: number[]) => {
    const s = [...x].sort((a, b) => a - b);
    return `best ${s[0]!.toFixed(0)} ms, median ${s[s.length >> 1]!.toFixed(0)} ms`;
  };
  console.log(`instrument a 1 MB module: ${fmt(inst)}`);
  console.log(
    `sandbox.load of a 1 MB module, first time: ${fmt(first)}; from the cache: ${fmt(cached)}`,
  );
}

Deno.bench("load - instrument a ~1 MB module", { group: "load", n: 10, warmup: 2 }, () => {
  instrumentModule(big, { maxPages: 512 });
});
Deno.bench(
  "load - sandbox.load of a ~1 MB module, first time (empty cache)",
  { group: "load", n: 10, warmup: 2 },
  async (b) => {
    await Deno.remove(`${stateDir}/${INSTRUMENT_CACHE_DIR}`, { recursive: true }).catch(() => {});
    b.start();
    const p = await sandbox.load(big, { name: "big", grants, limits });
    b.end();
    await p.close();
  },
);
Deno.bench(
  "load - sandbox.load of a ~1 MB module, from the cache",
  { group: "load", n: 10, warmup: 2 },
  async (b) => {
    b.start();
    const p = await sandbox.load(big, { name: "big", grants, limits });
    b.end();
    await p.close();
  },
);

globalThis.addEventListener("unload", () => {
  void sandbox.close();
  Deno.removeSync(stateDir, { recursive: true });
});
