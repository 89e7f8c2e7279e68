/**
 * The module rewrite: one pass over the sections, adding the fuel machinery, rewriting every
 * function body (code.ts) and capping memory (and optionally tables).
 *
 * Added to the module (all names reserved; a module exporting a `__mr_` name is refused):
 * - import `mr:sandbox.refill: () -> i32` (appended after the module's imports, so every
 *   defined function's index moves up by one; calls, `ref.func`, elements, exports and
 *   globals are renumbered),
 * - three internal mutable i32 globals: the fuel counter, the return code (exported as
 *   `__mr_rc`) and a "started" flag,
 * - `refuel(i32) -> i32` (the checks' cold path), exports `__mr_fuel_reset` (zero the
 *   counter) and `__mr_fuel_left` (what is left of the current chunk),
 * - a wrapper per function export that (1) runs the start function and `_initialize` /
 *   `hs_init` once, at the first export call of an instance, so they run under that call's
 *   fuel and deadline (the start section and those exports are removed), and (2) for
 *   `() -> i32` exports stores the return code in `__mr_rc` (Extism JS ignores it).
 *
 * @module
 */
import { FUEL_RESET, RC_GLOBAL } from "../protocol.ts";
import { Reader, WasmFormatError, Writer } from "./bytes.ts";
import { type CodeContext, rewriteBody } from "./code.ts";
import { IMPORT_CALL_COST } from "./opcodes.ts";
import {
  capLimits,
  count,
  type FuncType,
  readExports,
  readFunctions,
  readImports,
  readSections,
  readTypes,
  rewriteElements,
  rewriteGlobals,
} from "./sections.ts";

/** Import module and name of the runtime's refill function (`() -> i32`, 0 = stop). */
export const TICK_MODULE = "mr:sandbox";
export const TICK_NAME = "refill";
/** Export returning the fuel left in the current chunk (after a call: unused fuel). */
export const FUEL_LEFT = "__mr_fuel_left";
/** Exports run once, before the first export call, under that call's limits. */
export const INIT_EXPORTS = ["_initialize", "hs_init"];
/** Custom section name of the WebAssembly branch-hinting proposal (shipped in V8). */
export const BRANCH_HINT_SECTION = "metadata.code.branch_hint";

/** Caps applied while rewriting. */
export interface Caps {
  maxPages: number;
  maxTableEntries?: number | undefined;
}

export { OverLimitError } from "./sections.ts";

/** Rewrites `wasm` (see the module doc). Throws WasmFormatError or OverLimitError. */
export function rewriteModule(wasm: Uint8Array, caps: Caps): Uint8Array {
  const secs = readSections(wasm);
  const types = readTypes(wasm, secs.get(1));
  const imports = readImports(wasm, secs.get(2));
  const defined = readFunctions(wasm, secs.get(3));
  const exports = readExports(wasm, secs.get(7));
  const nImp = imports.funcTypes.length;
  const funcType = (f: number): FuncType => {
    const t = f < nImp ? imports.funcTypes[f] : defined[f - nImp];
    const ft = t === undefined ? undefined : types[t];
    if (!ft) throw new WasmFormatError(`Function ${f} or its type does not exist`, 0);
    return ft;
  };
  const fn = (f: number) => (f < nImp ? f : f + 1);
  // Functions a body may take a reference to (`ref.func`, tables) must be declared in an
  // element segment, a global or an export: seeing those tells whether a table can hold
  // an imported function (then call_indirect is charged like an import call).
  let importRefs = imports.tables > 0;
  const fnRef = (f: number) => {
    if (f < nImp) importRefs = true;
    return fn(f);
  };
  for (const e of exports) {
    if (e.name.startsWith("__mr_")) {
      throw new WasmFormatError(`Module exports a reserved name: "${e.name}"`, 0);
    }
  }
  const isVoid = (t: FuncType) => t.params === 0 && t.results.length === 0;
  // what runs before the first export call
  const init: number[] = [];
  const startSec = secs.get(8);
  if (startSec) {
    const start = new Reader(wasm, startSec.start, startSec.end).u32();
    if (!isVoid(funcType(start))) throw new WasmFormatError("Start function is not () -> ()", 0);
    init.push(start);
  }
  const initExports = new Set<number>();
  for (const name of INIT_EXPORTS) {
    const i = exports.findIndex((e) => e.kind === 0 && e.name === name);
    if (i >= 0 && isVoid(funcType(exports[i]!.index))) {
      init.push(exports[i]!.index);
      initExports.add(i);
    }
  }

  const nTypes = types.length;
  const T_VOID_I32 = nTypes, T_I32_I32 = nTypes + 1, T_VOID = nTypes + 2;
  const nGlobals = imports.globals + count(wasm, secs.get(6));
  const G_FUEL = nGlobals, G_RC = nGlobals + 1, G_STARTED = nGlobals + 2;
  const REFILL = nImp;
  const base = nImp + 1 + defined.length;
  const REFUEL = base, RESET = base + 1, LEFT = base + 2;

  // export wrappers
  interface Wrapper {
    target: number;
    type: number;
    rc: boolean;
  }
  const wrappers: Wrapper[] = [];
  const newExports: { name: string; kind: number; index: number }[] = [];
  exports.forEach((e, i) => {
    if (initExports.has(i)) return;
    if (e.kind !== 0) return newExports.push(e);
    const t = funcType(e.index);
    const rc = t.params === 0 && t.results.length === 1 && t.results[0] === 0x7f;
    if (!rc && init.length === 0) return newExports.push({ ...e, index: fn(e.index) });
    const type = e.index < nImp ? imports.funcTypes[e.index]! : defined[e.index - nImp]!;
    newExports.push({ ...e, index: LEFT + 1 + wrappers.length });
    wrappers.push({ target: e.index, type, rc });
  });
  newExports.push({ name: FUEL_RESET, kind: 0, index: RESET });
  newExports.push({ name: FUEL_LEFT, kind: 0, index: LEFT });
  newExports.push({ name: RC_GLOBAL, kind: 3, index: G_RC });

  const out = new Writer(wasm.length + (wasm.length >> 2) + 1024);
  out.bytes(wasm, 0, 8);
  const copyEntries = (id: number, w: Writer) => {
    const s = secs.get(id);
    if (!s) return;
    const r = new Reader(wasm, s.start, s.end);
    r.u32();
    w.bytes(wasm, r.pos, s.end);
  };
  const copySection = (id: number) => {
    const s = secs.get(id);
    if (s) out.byte(id).u32(s.end - s.start).bytes(wasm, s.start, s.end);
  };
  { // types
    const w = new Writer().u32(nTypes + 3);
    copyEntries(1, w);
    w.byte(0x60).byte(0).byte(1).byte(0x7f); // () -> i32
    w.byte(0x60).byte(1).byte(0x7f).byte(1).byte(0x7f); // (i32) -> i32
    w.byte(0x60).byte(0).byte(0); // () -> ()
    out.section(1, w);
  }
  { // imports
    const w = new Writer().u32(count(wasm, secs.get(2)) + 1);
    copyEntries(2, w);
    w.name(TICK_MODULE).name(TICK_NAME).byte(0).u32(T_VOID_I32);
    out.section(2, w);
  }
  { // functions
    const w = new Writer().u32(defined.length + 3 + wrappers.length);
    copyEntries(3, w);
    w.u32(T_I32_I32).u32(T_VOID).u32(T_VOID_I32);
    for (const x of wrappers) w.u32(x.type);
    out.section(3, w);
  }
  const tables = secs.get(4);
  if (tables) out.section(4, capLimits(wasm, tables, caps.maxTableEntries, "table"));
  const memory = secs.get(5);
  if (memory) out.section(5, capLimits(wasm, memory, caps.maxPages, "memory"));
  { // globals
    const w = new Writer();
    const body = new Writer();
    const n = rewriteGlobals(wasm, secs.get(6), body, fnRef);
    w.u32(n + 3).bytes(body.buf, 0, body.len);
    for (let i = 0; i < 3; i++) w.byte(0x7f).byte(1).byte(0x41).byte(0).byte(0x0b);
    out.section(6, w);
  }
  { // exports
    const w = new Writer().u32(newExports.length);
    for (const e of newExports) {
      w.name(e.name).byte(e.kind).u32(e.index);
    }
    out.section(7, w);
  }
  // start section dropped: the export wrappers run it
  const elements = secs.get(9);
  if (elements) out.section(9, rewriteElements(wasm, elements, fnRef));
  copySection(12);

  // code
  const codeSec = secs.get(10);
  const code = new Writer(wasm.length + (wasm.length >> 2) + 1024);
  const nBodies = count(wasm, codeSec);
  if (nBodies !== defined.length) {
    throw new WasmFormatError(
      `Function and code sections disagree: ${defined.length} functions, ${nBodies} bodies`,
      codeSec?.start ?? 0,
    );
  }
  code.u32(defined.length + 3 + wrappers.length);
  const ctx: CodeContext = {
    importedFuncs: nImp,
    fuelGlobal: G_FUEL,
    refuel: REFUEL,
    typeParams: types.map((t) => t.params),
    indirectCallCost: importRefs || exports.some((e) => e.kind === 0 && e.index < nImp)
      ? IMPORT_CALL_COST
      : 6,
    maxPages: Math.max(1, Math.min(caps.maxPages, 65536)),
  };
  const hints = new Writer();
  let hinted = 0;
  if (codeSec) {
    const r = new Reader(wasm, codeSec.start, codeSec.end);
    r.u32();
    const scratch = new Writer(1 << 16);
    for (let i = 0; i < defined.length; i++) {
      const size = r.u32();
      const start = r.pos;
      r.skip(size);
      const params = types[defined[i]!]?.params;
      if (params === undefined) {
        throw new WasmFormatError(`Function ${nImp + i} has an unknown type`, start);
      }
      const offsets = rewriteBody(wasm, start, start + size, params, ctx, code, scratch);
      if (offsets.length === 0) continue;
      hinted++;
      hints.u32(nImp + 1 + i).u32(offsets.length);
      for (const o of offsets) hints.u32(o).byte(1).byte(0); // size 1, "unlikely"
    }
  }
  // refuel(x): loop { c = refill(); if (c <= 0) unreachable; x += c; br_if (x < 0) } x
  const body = (w: Writer) => code.u32(w.len).bytes(w.buf, 0, w.len);
  body(
    new Writer().u32(1).u32(1).byte(0x7f)
      .byte(0x03).byte(0x40)
      .byte(0x10).u32(REFILL).byte(0x22).u32(1).byte(0x41).byte(0).byte(0x4c)
      .byte(0x04).byte(0x40).byte(0x00).byte(0x0b)
      .byte(0x20).u32(0).byte(0x20).u32(1).byte(0x6a).byte(0x22).u32(0)
      .byte(0x41).byte(0).byte(0x48).byte(0x0d).u32(0)
      .byte(0x0b).byte(0x20).u32(0).byte(0x0b),
  );
  body(new Writer().u32(0).byte(0x41).byte(0).byte(0x24).u32(G_FUEL).byte(0x0b)); // reset
  body(new Writer().u32(0).byte(0x23).u32(G_FUEL).byte(0x0b)); // left
  for (const x of wrappers) {
    const w = new Writer().u32(0);
    if (init.length > 0) {
      w.byte(0x23).u32(G_STARTED).byte(0x45).byte(0x04).byte(0x40);
      w.byte(0x41).byte(1).byte(0x24).u32(G_STARTED);
      for (const f of init) w.byte(0x10).u32(fn(f));
      w.byte(0x0b);
    }
    const params = types[x.type]!.params;
    for (let p = 0; p < params; p++) w.byte(0x20).u32(p);
    w.byte(0x10).u32(fn(x.target));
    if (x.rc) w.byte(0x24).u32(G_RC).byte(0x23).u32(G_RC);
    w.byte(0x0b);
    body(w);
  }
  if (hinted > 0) {
    const w = new Writer().name(BRANCH_HINT_SECTION).u32(hinted).bytes(hints.buf, 0, hints.len);
    out.section(0, w);
  }
  out.section(10, code);
  copySection(11);
  return out.result();
}
