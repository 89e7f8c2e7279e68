/**
 * Section-level parsing of a module for the instrumenter: the section table (order and
 * uniqueness checked; custom sections dropped, since names, DWARF and old branch hints
 * would point at moved code), function types, imports, exports, and the rewriting of
 * constant expressions, element segments, memories and tables.
 *
 * @module
 */
import { Reader, WasmFormatError, Writer } from "./bytes.ts";
import { valType } from "./opcodes.ts";

/** Non-custom section ids in their required order. */
const ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];

/** A section's content range. */
export interface Section {
  id: number;
  start: number;
  end: number;
}

/** Splits the module into its sections (custom sections are left out). */
export function readSections(wasm: Uint8Array): Map<number, Section> {
  if (
    wasm.length < 8 || wasm[0] !== 0 || wasm[1] !== 0x61 || wasm[2] !== 0x73 || wasm[3] !== 0x6d
  ) {
    throw new WasmFormatError("Not a WebAssembly module: bad magic number", 0);
  }
  if (wasm[4] !== 1 || wasm[5] !== 0 || wasm[6] !== 0 || wasm[7] !== 0) {
    throw new WasmFormatError("Unsupported WebAssembly version (components are not modules)", 4);
  }
  const r = new Reader(wasm, 8);
  const out = new Map<number, Section>();
  let rank = -1;
  while (!r.done) {
    const at = r.pos;
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    r.skip(size);
    if (id === 0) continue;
    if (id === 13) throw new WasmFormatError("Unsupported: exception handling (tag section)", at);
    const k = ORDER.indexOf(id);
    if (k < 0) throw new WasmFormatError(`Unknown section id ${id}`, at);
    if (k <= rank) throw new WasmFormatError(`Section ${id} is out of order or repeated`, at);
    rank = k;
    out.set(id, { id, start, end: r.pos });
  }
  return out;
}

/** A function type: parameter count and the encoded result types. */
export interface FuncType {
  params: number;
  results: number[];
}

/** Parses the type section (only plain function types; GC types are refused). */
export function readTypes(wasm: Uint8Array, s: Section | undefined): FuncType[] {
  if (!s) return [];
  const r = new Reader(wasm, s.start, s.end);
  const types: FuncType[] = [];
  for (let n = r.u32(); n > 0; n--) {
    const at = r.pos;
    if (r.byte() !== 0x60) throw new WasmFormatError("Unsupported: GC/recursive types", at);
    let params = 0;
    for (let p = r.u32(); p > 0; p--, params++) valType(r);
    const results: number[] = [];
    for (let q = r.u32(); q > 0; q--) results.push(valType(r));
    types.push({ params, results });
  }
  return types;
}

/** What the import section declares. */
export interface Imports {
  /** Type index of each imported function. */
  funcTypes: number[];
  globals: number;
  tables: number;
}

function limits(r: Reader, what: string): { flags: number; min: number; max?: number } {
  const at = r.pos;
  const flags = r.byte();
  if (flags > 1) {
    const why = flags & 2 ? "shared (threads)" : "64-bit or unknown";
    throw new WasmFormatError(`Unsupported ${what}: ${why} limits`, at);
  }
  const min = r.u32();
  return flags & 1 ? { flags, min, max: r.u32() } : { flags, min };
}

function tableType(r: Reader): { flags: number; min: number; max?: number } {
  const at = r.pos;
  const t = r.byte();
  if (t !== 0x70 && t !== 0x6f) {
    throw new WasmFormatError("Unsupported table type (typed references or initialiser)", at);
  }
  return limits(r, "table");
}

/** Parses the import section; imported memories, tags and tables of typed refs are refused. */
export function readImports(wasm: Uint8Array, s: Section | undefined): Imports {
  const out: Imports = { funcTypes: [], globals: 0, tables: 0 };
  if (!s) return out;
  const r = new Reader(wasm, s.start, s.end);
  for (let n = r.u32(); n > 0; n--) {
    r.name();
    const name = r.name();
    const at = r.pos;
    const kind = r.byte();
    if (kind === 0) out.funcTypes.push(r.u32());
    else if (kind === 1) {
      tableType(r);
      out.tables++;
    } else if (kind === 2) throw new WasmFormatError(`Unsupported: imported memory "${name}"`, at);
    else if (kind === 3) {
      valType(r);
      r.byte();
      out.globals++;
    } else throw new WasmFormatError(`Unsupported import kind ${kind} ("${name}")`, at);
  }
  return out;
}

/** Type index of each defined function. */
export function readFunctions(wasm: Uint8Array, s: Section | undefined): number[] {
  if (!s) return [];
  const r = new Reader(wasm, s.start, s.end);
  const out: number[] = [];
  for (let n = r.u32(); n > 0; n--) out.push(r.u32());
  return out;
}

/** An export entry. */
export interface Export {
  name: string;
  kind: number;
  index: number;
}

export function readExports(wasm: Uint8Array, s: Section | undefined): Export[] {
  if (!s) return [];
  const r = new Reader(wasm, s.start, s.end);
  const out: Export[] = [];
  for (let n = r.u32(); n > 0; n--) {
    const name = r.name();
    const kind = r.byte();
    out.push({ name, kind, index: r.u32() });
  }
  return out;
}

/** Number of entries of a vector section (0 when absent). */
export function count(wasm: Uint8Array, s: Section | undefined): number {
  return s ? new Reader(wasm, s.start, s.end).u32() : 0;
}

/** Copies a constant expression up to its `end`, renumbering `ref.func`. */
export function constExpr(r: Reader, w: Writer, fn: (f: number) => number): void {
  for (;;) {
    const s = r.pos;
    const op = r.byte();
    switch (op) {
      case 0x0b:
        w.byte(0x0b);
        return;
      case 0x41:
        r.skipLeb(5);
        break;
      case 0x42:
        r.skipLeb(10);
        break;
      case 0x43:
        r.skip(4);
        break;
      case 0x44:
        r.skip(8);
        break;
      case 0x23:
        r.u32();
        break;
      case 0xd0:
        r.byte();
        break;
      case 0xd2:
        w.byte(0xd2).u32(fn(r.u32()));
        continue;
      case 0x6a: // extended constant expressions
      case 0x6b:
      case 0x6c:
      case 0x7c:
      case 0x7d:
      case 0x7e:
        break;
      case 0xfd:
        if (r.u32() !== 12) r.fail("Unsupported instruction in a constant expression", s);
        r.skip(16);
        break;
      default:
        r.fail(`Unsupported instruction 0x${op.toString(16)} in a constant expression`, s);
    }
    w.bytes(r.bytes, s, r.pos);
  }
}

/** Rewrites the global section's entries (without the count) into `w`. */
export function rewriteGlobals(
  wasm: Uint8Array,
  s: Section | undefined,
  w: Writer,
  fn: (f: number) => number,
): number {
  if (!s) return 0;
  const r = new Reader(wasm, s.start, s.end);
  const n = r.u32();
  for (let i = 0; i < n; i++) {
    const at = r.pos;
    valType(r);
    r.byte();
    w.bytes(wasm, at, r.pos);
    constExpr(r, w, fn);
  }
  return n;
}

/** Rewrites the element section (renumbering function indices). */
export function rewriteElements(
  wasm: Uint8Array,
  s: Section,
  fn: (f: number) => number,
): Writer {
  const r = new Reader(wasm, s.start, s.end);
  const w = new Writer(s.end - s.start + 64);
  const n = r.u32();
  w.u32(n);
  for (let i = 0; i < n; i++) {
    const at = r.pos;
    const flags = r.u32();
    if (flags > 7) r.fail(`Unknown element segment kind ${flags}`, at);
    w.u32(flags);
    if (flags === 2 || flags === 6) w.u32(r.u32()); // table index
    if ((flags & 1) === 0) constExpr(r, w, fn); // active: offset
    const exprs = (flags & 4) !== 0;
    if (flags & 3) { // elemkind or reftype
      const t = r.byte();
      if (exprs ? t !== 0x70 && t !== 0x6f : t !== 0) r.fail("Unsupported element type", r.pos - 1);
      w.byte(t);
    }
    const m = r.u32();
    w.u32(m);
    for (let k = 0; k < m; k++) {
      if (exprs) constExpr(r, w, fn);
      else w.u32(fn(r.u32()));
    }
  }
  return w;
}

/** A memory or table size above its cap. */
export class OverLimitError extends Error {
  override name = "OverLimitError";
}

/** Rewrites memory (`what` = "memory") or table limits so that `max ≤ cap`. */
export function capLimits(
  wasm: Uint8Array,
  s: Section,
  cap: number | undefined,
  what: "memory" | "table",
): Writer {
  const r = new Reader(wasm, s.start, s.end);
  const w = new Writer(s.end - s.start + 16);
  const n = r.u32();
  if (what === "memory" && n > 1) r.fail("Unsupported: multiple memories", s.start);
  w.u32(n);
  for (let i = 0; i < n; i++) {
    let t = 0;
    if (what === "table") t = r.bytes[r.pos]!;
    const l = what === "table" ? tableType(r) : limits(r, "memory");
    if (what === "table") w.byte(t);
    if (cap === undefined) {
      w.byte(l.flags).u32(l.min);
      if (l.max !== undefined) w.u32(l.max);
      continue;
    }
    if (l.min > cap) {
      throw new OverLimitError(
        what === "memory"
          ? `Module needs ${l.min} initial memory pages, the limit is ${cap}`
          : `Module needs a table of ${l.min} entries, the limit is ${cap}`,
      );
    }
    w.byte(1).u32(l.min).u32(Math.min(l.max ?? cap, cap));
  }
  return w;
}
