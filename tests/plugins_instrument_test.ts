// The instrumenter (src/plugins/instrument/) under plain WebAssembly: instrumented modules
// compute what the originals compute (fixtures and the example agents), fuel is
// deterministic and grows with the work, bulk operations are charged before they run,
// start/_initialize run once at the first call, and unsupported modules are refused.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { instrumentModule } from "../src/plugins/instrument.ts";
import { SandboxError } from "../src/plugins/types.ts";
import { compileWat } from "./helpers/wat.ts";
import { type KernelRun, runWithKernel } from "./helpers/wasm_kernel.ts";

const instrument = (w: Uint8Array) => instrumentModule(w, { maxPages: 1024 });

/** Calls `fn` on an instrumented run from a zeroed counter; returns [result, fuel used]. */
function metered(run: KernelRun, fn: string, ...args: unknown[]): [unknown, number] {
  (run.exports["__mr_fuel_reset"] as () => void)();
  const before = run.handedOut();
  const result = (run.exports[fn] as (...a: unknown[]) => unknown)(...args);
  const left = (run.exports["__mr_fuel_left"] as () => number)();
  return [result, run.handedOut() - before - left];
}

async function digest(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes.slice());
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("instrument - instrumented fixtures compute what the originals compute, memory included", async () => {
  const wasm = await compileWat("differential");
  const plain = await runWithKernel(wasm);
  const inst = await runWithKernel(instrument(wasm));
  const cases: [string, number[]][] = [
    ["fib", [0, 1, 2, 15]],
    ["count", [0, 1, 77, 1000]],
    ["machine", [1, 5, 9]],
    ["bulk", [0, 7, 255]],
    ["tables", [3, -2]],
    ["simd", [0, 5, 1 << 20]],
    ["misc", [0, 1, 127, 128, -129, 2_000_000]],
    ["blocks", [0, 5, 101]],
    ["loops", [0, 1, 10, 300]],
    ["refs", [4, 9]],
    ["drop_data", [1]],
  ];
  let n = 0;
  for (const [fn, inputs] of cases) {
    for (const x of inputs) {
      const a = (plain.exports[fn] as (x: number) => unknown)(x);
      const [b] = metered(inst, fn, x);
      assertEquals(b, a, `${fn}(${x})`);
      n++;
    }
  }
  assertEquals(await digest(inst.memory()), await digest(plain.memory()), "same linear memory");
  assert(n >= 25);
  // the metering benchmark's loops too
  const runaway = await compileWat("runaway");
  const rp = await runWithKernel(runaway);
  const ri = await runWithKernel(instrument(runaway));
  for (const fn of ["compute", "hash"]) {
    assertEquals(metered(ri, fn)[0], (rp.exports[fn] as () => number)(), fn);
  }
  assertEquals(await digest(ri.memory()), await digest(rp.memory()));
});

Deno.test("instrument - the example agents behave the same instrumented (output, host calls, memory)", async () => {
  const dist = new URL("../wasm-examples/dist/", import.meta.url);
  const reconcile = JSON.stringify({
    desired: { services: ["nginx"], urls: ["http://127.0.0.1:1/"], thresholds: {} },
    facts: { cpu: { load1: 0.5 }, memory: { used_pct: 50 } },
    state: {},
    trigger: { kind: "command", at: "2026-01-01T00:00:00Z" },
  });
  let checked = 0;
  for await (const e of Deno.readDir(dist)) {
    if (!e.name.endsWith(".wasm")) continue;
    const wasm = await Deno.readFile(new URL(e.name, dist));
    const plain = await runWithKernel(wasm);
    const inst = await runWithKernel(instrument(wasm));
    // a WASI reactor's _initialize runs before the first call (the instrumented one does it)
    let init = plain.exports["_initialize"] as (() => void) | undefined;
    for (
      const [fn, input] of [
        ["mr_describe", ""],
        ["mr_init", "{}"],
        ["mr_reconcile", reconcile],
        ["_start", ""], // WASI command modules
      ]
    ) {
      if (typeof plain.exports[fn!] !== "function") {
        assertEquals(typeof inst.exports[fn!], "undefined", `${e.name} ${fn}`);
        continue;
      }
      plain.input(input!);
      inst.input(input!);
      let a: unknown, b: unknown;
      try {
        if (init) {
          const f = init;
          init = undefined; // once, like the instrumented wrapper
          f();
        }
        a = (plain.exports[fn!] as () => number)();
      } catch (err) {
        a = `threw ${(err as Error).message}`;
      }
      try {
        b = metered(inst, fn!)[0];
      } catch (err) {
        b = `threw ${(err as Error).message}`;
      }
      assertEquals(b, a, `${e.name} ${fn}`);
      assertEquals(inst.output(), plain.output(), `${e.name} ${fn} output`);
    }
    assertEquals(inst.calls, plain.calls, `${e.name} host calls`);
    assertEquals(await digest(inst.memory()), await digest(plain.memory()), e.name);
    assert(plain.output().length > 0 || plain.calls.length > 0, `${e.name} did something`);
    checked++;
  }
  assert(checked >= 4, "every example agent was compared");
});

Deno.test("instrument - fuel is deterministic and grows with the work", async () => {
  const inst = await runWithKernel(instrument(await compileWat("differential")));
  const fuel = (n: number) => metered(inst, "count", n)[1];
  const f = [0, 1, 2, 10, 100, 1000].map(fuel);
  for (let i = 1; i < f.length; i++) assert(f[i]! > f[i - 1]!, `fuel(${i}) grows: ${f}`);
  assertEquals(fuel(100), f[4], "the same input costs the same fuel");
  const perIteration = f[2]! - f[1]!;
  assert(perIteration >= 10, "every instruction of the loop body is charged");
  assertEquals(f[5]! - f[4]!, 900 * perIteration, "linear in the iterations");
  // a different chunk size hands out fuel differently but charges the same
  const small = await runWithKernel(instrument(await compileWat("differential")), 7);
  assertEquals(metered(small, "count", 1000)[1], f[5]);
  assertEquals(metered(small, "fib", 12)[1], metered(inst, "fib", 12)[1]);
});

Deno.test("instrument - a long straight run of host calls is cut by checks (the deadline is still asked)", async () => {
  const calls = "(drop (call $len (i64.const 0)))".repeat(25_000); // 2.5 M units in one block
  const wasm = await compileWat(`(module
    (import "extism:host/env" "length" (func $len (param i64) (result i64)))
    (memory (export "memory") 1) (func (export "go") (result i32) ${calls} (i32.const 0)))`);
  const seen: string[] = [];
  const { instance } = await WebAssembly.instantiate(
    instrument(wasm) as Uint8Array<ArrayBuffer>,
    {
      "extism:host/env": { length: () => (seen.push("call"), 0n) },
      "mr:sandbox": { refill: () => (seen.push("refill"), 1 << 20) },
    },
  );
  (instance.exports["__mr_fuel_reset"] as () => void)();
  (instance.exports["go"] as () => number)();
  const firstCall = seen.indexOf("call");
  assert(firstCall > 0, "charged before the first call");
  assert(seen.lastIndexOf("refill") > firstCall, "refills (deadline checks) between the calls");
  assertEquals(seen.filter((x) => x === "call").length, 25_000);
});

Deno.test("instrument - work before a tail call of an import is not lost from the count", async () => {
  const run = await runWithKernel(instrument(
    await compileWat(
      `(module (import "extism:host/env" "length" (func $len (param i64) (result i64)))
      (memory (export "memory") 1)
      (func $f (result i64) (memory.fill (i32.const 0) (i32.const 1) (i32.const 40000))
        (return_call $len (i64.const 0)))
      (func (export "go") (param $n i32) (result i32)
        (loop $l (drop (call $f)) (local.tee $n (i32.sub (local.get $n) (i32.const 1))) (br_if $l))
        (i32.const 0)))`,
    ),
  ));
  const [, one] = metered(run, "go", 1);
  const [, hundred] = metered(run, "go", 100);
  assert(one >= 10_000, `a 40,000-byte fill is charged: ${one}`);
  assert(hundred >= 100 * 10_000, `every call's fill is charged: ${hundred}`);
});

Deno.test("instrument - call_indirect costs an import call only when a table can hold an import", async () => {
  const wat = (target: string) =>
    `(module (import "extism:host/env" "length" (func $len (param i64) (result i64)))
      (type $t (func (param i64) (result i64))) (memory (export "memory") 1)
      (func $own (param i64) (result i64) (local.get 0))
      (table 1 funcref) (elem (i32.const 0) ${target})
      (func (export "ind") (result i64) (call_indirect (type $t) (i64.const 0) (i32.const 0))))`;
  const host = await runWithKernel(instrument(await compileWat(wat("$len"))));
  const own = await runWithKernel(instrument(await compileWat(wat("$own"))));
  const [, hostFuel] = metered(host, "ind");
  const [, ownFuel] = metered(own, "ind");
  assert(hostFuel >= 100, `through a table holding an import: ${hostFuel}`);
  assert(ownFuel < 30, `through a table of module functions: ${ownFuel}`);
});

Deno.test("instrument - bulk operations are charged by length before they run", async () => {
  const inst = await runWithKernel(instrument(await compileWat("hostile_bulk")));
  inst.budget(1_000_000); // < 32 MiB / 4
  (inst.exports["__mr_fuel_reset"] as () => void)();
  assertThrows(() => (inst.exports["fill"] as () => number)(), WebAssembly.RuntimeError);
  assertEquals(inst.memory()[0], 0, "the 32 MiB fill never started");
  assertEquals(inst.memory()[(32 << 20) - 1], 0);
  // with enough fuel for a few iterations the fill happens, then the loop is stopped
  inst.budget(10_000_000);
  (inst.exports["__mr_fuel_reset"] as () => void)();
  assertThrows(() => (inst.exports["fill"] as () => number)(), WebAssembly.RuntimeError);
  assertEquals(inst.memory()[0], 7);
  assert(inst.handedOut() <= 11_000_000, "stopped when the budget was spent");
  const table = await runWithKernel(instrument(await compileWat("hostile_table")));
  table.budget(5_000_000); // < two grows: 32 units × (100,000 delta + current size) each
  (table.exports["__mr_fuel_reset"] as () => void)();
  assertThrows(() => (table.exports["grow"] as () => number)(), WebAssembly.RuntimeError);
  assertEquals(table.handedOut(), 5_000_000);
});

Deno.test("instrument - start function and _initialize run once, in order, at the first call", async () => {
  const wasm = await compileWat("init_order");
  const out = instrument(wasm);
  const mod = new WebAssembly.Module(out as Uint8Array<ArrayBuffer>);
  const names = WebAssembly.Module.exports(mod).map((e) => e.name);
  assert(!names.includes("_initialize"), "_initialize is no longer exported");
  let refills = 0;
  const instance = await WebAssembly.instantiate(mod, {
    "mr:sandbox": { refill: () => (refills++, 1000) },
  });
  assertEquals(refills, 0, "nothing ran at instantiation");
  const state = instance.exports["state"] as () => bigint;
  assertEquals(state(), (1n << 32n) | 12n, "start then _initialize, then the export");
  assertEquals(state(), (2n << 32n) | 12n, "only once");
  assert(refills > 0, "they ran metered");
  // a spinning start function / _initialize is stopped by fuel at the first call
  for (const name of ["start_spin", "initialize_spin"]) {
    const spin = await runWithKernel(instrument(await compileWat(name)));
    spin.budget(1_000_000);
    assertThrows(() => (spin.exports["mr_reconcile"] as () => number)(), WebAssembly.RuntimeError);
    assertEquals(spin.handedOut(), 1_000_000, name);
  }
});

Deno.test("instrument - control-flow runaways and huge bodies are metered", async () => {
  const inst = await runWithKernel(instrument(await compileWat("hostile_control")));
  for (const fn of ["br_table", "indirect", "tail", "recurse"]) {
    inst.budget(2_000_000);
    const before = inst.handedOut();
    (inst.exports["__mr_fuel_reset"] as () => void)();
    assertThrows(() => (inst.exports[fn] as () => number)(), Error);
    // the recursions overflow the stack first (a trap); the loops spend the budget
    if (fn === "br_table" || fn === "tail") assertEquals(inst.handedOut() - before, 2_000_000, fn);
  }
  // a 100,000-instruction straight-line block inside a loop: charged as one block
  const body = "(local.set $a (i32.add (local.get $a) (i32.const 1)))".repeat(33_000);
  const huge = await compileWat(
    `(module (memory (export "memory") 1) (func (export "big") (result i32) (local $a i32)
      (loop $l ${body} (br $l)) (i32.const 0)))`,
  );
  const big = await runWithKernel(instrument(huge));
  big.budget(1_000_000);
  (big.exports["__mr_fuel_reset"] as () => void)();
  assertThrows(() => (big.exports["big"] as () => number)(), WebAssembly.RuntimeError);
  assertEquals(big.handedOut(), 1_000_000);
});

// --- refusals ------------------------------------------------------------------------------

const leb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
/** A module with one `() -> ()` function whose body is `code` (without locals and end). */
function module(code: number[], extra: number[] = [], memory = [0x01, 0x00, 0x01]): Uint8Array {
  const body = [0x00, ...code, 0x0b];
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [0x01, 0x60, 0x00, 0x00]),
    ...section(3, [0x01, 0x00]),
    ...(memory.length ? section(5, memory) : []),
    ...extra,
    ...section(10, [0x01, ...leb(body.length), ...body]),
  ]);
}

function refused(wasm: Uint8Array, pattern: RegExp, code = "invalid_module"): void {
  const err = assertThrows(
    () => instrumentModule(wasm, { maxPages: 4 }),
    SandboxError,
  ) as SandboxError;
  assertEquals(err.code, code, err.message);
  assert(pattern.test(err.message), `${err.message} should match ${pattern}`);
}

Deno.test("instrument - unsupported or malformed modules are refused naming the problem", () => {
  assert(WebAssembly.validate(instrument(module([0x01])) as Uint8Array<ArrayBuffer>));
  refused(module([0x41, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x1a]), /threads\/atomics/);
  refused(module([], [], [0x01, 0x03, 0x01, 0x01]), /shared \(threads\)/);
  refused(module([], [], [0x01, 0x04, 0x01]), /64-bit/);
  refused(module([], [], [0x02, 0x00, 0x01, 0x00, 0x01]), /multiple memories/);
  refused(module([0x06, 0x40, 0x0b]), /exception handling/);
  refused(module([0xfb, 0x00]), /GC/);
  refused(module([0x41]), /end of section/);
  refused(module([0x0b, 0x01]), /after its final end/);
  refused(module([0x3f, 0x01, 0x1a]), /multi-memory/);
  // invalid input that would become valid after the rewrite: global.set of the fuel counter
  refused(module([0x41, 0x7f, 0x24, 0x00]), /Invalid WebAssembly module/);
  refused(module([0x10, 0x05]), /Invalid WebAssembly module/); // call of a function to be added
  refused(Uint8Array.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]), /version/);
  refused(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), /magic/);
  const reserved = module(
    [],
    section(7, [0x01, 0x08, ...new TextEncoder().encode("__mr_rc0"), 0, 0]),
  );
  refused(reserved, /reserved name/);
  const tag = module([], section(13, [0x01, 0x00, 0x00]));
  refused(tag, /exception handling/);
  refused(module([], [], [0x01, 0x00, 0x09]), /9 initial memory pages/, "memory_limit");
});

Deno.test("instrument - the table cap rewrites maxima and refuses oversized tables", async () => {
  const wasm = await compileWat("differential"); // tables of 4 funcref and 2 externref
  const out = instrumentModule(wasm, { maxPages: 16, maxTableEntries: 5 });
  const capped = (await runWithKernel(out)).exports["tables"] as (v: number) => number;
  const plain = (await runWithKernel(wasm)).exports["tables"] as (v: number) => number;
  // each call grows the externref table by 3: 2 → 5 fits the cap, 5 → 8 does not
  assertEquals(capped(3), plain(3));
  assertEquals(capped(3), plain(3) - 3, "the second grow failed at the cap");
  const err = assertThrows(
    () => instrumentModule(wasm, { maxPages: 16, maxTableEntries: 3 }),
    SandboxError,
  ) as SandboxError;
  assertEquals(err.code, "memory_limit");
  assert(err.message.includes("table of 4 entries"), err.message);
});

Deno.test("instrument - the memory maximum is capped", async () => {
  const out = instrumentModule(await compileWat("differential"), { maxPages: 3 });
  const { instance } = await WebAssembly.instantiate(out as Uint8Array<ArrayBuffer>, {
    "mr:sandbox": { refill: () => 1 << 20 },
  });
  const memory = instance.exports["memory"] as WebAssembly.Memory;
  assertEquals(memory.grow(1), 2);
  assertThrows(() => memory.grow(1), RangeError);
});
