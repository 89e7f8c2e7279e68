/**
 * Memory accounting at load: a module's tables count against `memory_mb` with its linear
 * memory. Reads the table section, caps each table's maximum (so `table.grow` fails inside
 * the engine beyond it), and computes the linear-memory cap that is left.
 *
 * @module
 */
import { SandboxError } from "./types.ts";

/** Bytes one table entry is counted as (V8 measured ~23 B with its dispatch table). */
export const TABLE_ENTRY_BYTES = 32;
/** Growth a table without a declared maximum may have. */
export const TABLE_GROW_DEFAULT = 1024;

const PAGE = 65536;

/** The memory plan of one module under a `memory_mb` budget. */
export interface MemoryPlan {
  /** The module with its table section rewritten (same bytes when it has no tables). */
  bytes: Uint8Array;
  /** Linear-memory cap in pages (what is left after the tables). */
  maxPages: number;
  /** Bytes reserved for the tables at their capped maximum. */
  tableBytes: number;
}

interface Table {
  ref: number;
  min: number;
  max: number | null;
}

class Cursor {
  constructor(readonly b: Uint8Array, public pos = 0) {}
  byte(): number {
    if (this.pos >= this.b.length) throw new SandboxError("invalid_module", "Truncated module");
    return this.b[this.pos++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      const byte = this.byte();
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
    }
    throw new SandboxError("invalid_module", "Malformed LEB128 integer");
  }
  skipName(): void {
    const n = this.u32();
    this.pos += n;
  }
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

function readTables(c: Cursor, end: number): Table[] {
  const tables: Table[] = [];
  const count = c.u32();
  for (let i = 0; i < count; i++) {
    const ref = c.byte();
    if (ref === 0x40) {
      throw new SandboxError(
        "invalid_module",
        "Tables with initializer expressions are not supported",
      );
    }
    const flags = c.byte();
    if (flags !== 0 && flags !== 1) {
      throw new SandboxError("invalid_module", `Unsupported table limits (flags ${flags})`);
    }
    const min = c.u32();
    const max = flags === 1 ? c.u32() : null;
    tables.push({ ref, min, max });
  }
  if (c.pos !== end) throw new SandboxError("invalid_module", "Malformed table section");
  return tables;
}

function importsTable(c: Cursor, end: number): boolean {
  const count = c.u32();
  for (let i = 0; i < count && c.pos < end; i++) {
    c.skipName();
    c.skipName();
    const kind = c.byte();
    if (kind === 0x01) return true;
    if (kind === 0x00) c.u32();
    else if (kind === 0x02) {
      const flags = c.byte();
      c.u32();
      if (flags & 1) c.u32();
    } else if (kind === 0x03) {
      c.byte();
      c.byte();
    } else if (kind === 0x04) {
      c.byte();
      c.u32();
    } else return false; // unknown kind: the engine's validation decides
  }
  return false;
}

/**
 * Plans `wasm`'s memory under `budgetBytes`: tables at their (capped) maximum are
 * reserved first, linear memory gets the rest. Throws `memory_limit` when the initial
 * tables and memory do not fit, `invalid_module` for imported or unsupported tables.
 */
export function planMemory(wasm: Uint8Array, budgetBytes: number): MemoryPlan {
  const c = new Cursor(wasm, 8);
  let initialPages = 0;
  let tableSection: { start: number; end: number; tables: Table[] } | null = null;
  while (c.pos < wasm.length) {
    const sectionStart = c.pos;
    const id = c.byte();
    const size = c.u32();
    const start = c.pos;
    const end = start + size;
    if (end > wasm.length) throw new SandboxError("invalid_module", "Truncated section");
    if (id === 2 && importsTable(c, end)) {
      throw new SandboxError("invalid_module", "Imported tables are not supported");
    }
    if (id === 4) {
      const tables = readTables(new Cursor(wasm, start), end);
      tableSection = { start: sectionStart, end, tables };
    }
    if (id === 5 && c.u32() > 0) {
      c.byte(); // limits flags
      initialPages = c.u32();
    }
    c.pos = end;
  }
  const tables = tableSection?.tables ?? [];
  const initial = tables.reduce((s, t) => s + t.min * TABLE_ENTRY_BYTES, 0);
  const initialMemory = initialPages * PAGE;
  if (initial + initialMemory > budgetBytes) {
    throw new SandboxError(
      "memory_limit",
      `Tables need ${initial} bytes at load (${tables.map((t) => t.min).join(" + ")} entries × ` +
        `${TABLE_ENTRY_BYTES} B) with ${initialMemory} bytes of memory: more than memory_mb ` +
        `(${budgetBytes} bytes)`,
    );
  }
  // each table may grow to its declared maximum (or by TABLE_GROW_DEFAULT) while that fits
  // beside the initial memory; otherwise it keeps its initial size
  let caps = tables.map((t) => t.max ?? t.min + TABLE_GROW_DEFAULT);
  let reserved = caps.reduce((s, n) => s + n * TABLE_ENTRY_BYTES, 0);
  if (reserved + initialMemory > budgetBytes) {
    caps = tables.map((t) => t.min);
    reserved = initial;
  }
  const maxPages = Math.floor((budgetBytes - reserved) / PAGE);
  if (!tableSection) return { bytes: wasm, maxPages, tableBytes: 0 };
  const body = [...leb(tables.length)];
  tables.forEach((t, i) => body.push(t.ref, 0x01, ...leb(t.min), ...leb(caps[i]!)));
  const section = [4, ...leb(body.length), ...body];
  const out = new Uint8Array(
    wasm.length - (tableSection.end - tableSection.start) + section.length,
  );
  out.set(wasm.subarray(0, tableSection.start), 0);
  out.set(section, tableSection.start);
  out.set(wasm.subarray(tableSection.end), tableSection.start + section.length);
  return { bytes: out, maxPages, tableBytes: reserved };
}
