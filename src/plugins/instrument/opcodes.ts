/**
 * Instruction decoding for the instrumenter: every instruction of MVP, sign extension,
 * saturating conversions, bulk memory, reference types, multi-value, tail calls and SIMD
 * (incl. relaxed SIMD) is decoded to a {@linkcode Kind} and its immediates are skipped;
 * anything else (threads/atomics, exceptions, GC, multi-memory, memory64) is refused with a
 * {@linkcode WasmFormatError} naming it.
 *
 * The cost table (fuel units ≈ simple instructions): most instructions cost 1, structural
 * ones (`block`, `loop`, `end`, `else`, `nop`) 0, divisions and square roots 4, calls 4,
 * indirect calls 6, calls of imported (host/kernel) functions 100, memory.grow/table.grow
 * 100, memory.fill/copy/init 50 and table.fill/copy/init 100, plus their
 * length-proportional part charged at run time (see code.ts). Calibrated against V8's
 * baseline tier (Liftoff, where a runaway single call stays): no class of instruction runs
 * slower than ~8 ns per unit there on a loaded box, so a refill chunk (the runtime's 2^18
 * units) is ≤ ~2 ms.
 *
 * @module
 */
import { type Reader, WasmFormatError } from "./bytes.ts";

/** How the rewriter treats an instruction. */
export const Kind = {
  Plain: 0,
  Block: 1,
  Loop: 2,
  If: 3,
  Else: 4,
  End: 5,
  Br: 6,
  BrIf: 7,
  BrTable: 8,
  Return: 9,
  Call: 10,
  CallIndirect: 11,
  ReturnCall: 12,
  ReturnCallIndirect: 13,
  RefFunc: 14,
  /** memory.fill/copy/init: length (bytes) on top of the stack. */
  BulkMemory: 15,
  /** memory.grow: delta (pages) on top of the stack. */
  MemoryGrow: 16,
  /** table.fill/copy/init: length (entries) on top of the stack. */
  BulkTable: 17,
  /** table.grow: delta (entries) on top of the stack. */
  TableGrow: 18,
  Unreachable: 19,
} as const;
/** One of {@linkcode Kind}. */
export type Kind = typeof Kind[keyof typeof Kind];

/** Decoded facts of the last instruction (reused to avoid allocation). */
export interface Decoded {
  kind: Kind;
  /** Label (br, br_if), largest label (br_table) or function index (call, ref.func). */
  imm: number;
  /** Static fuel cost. */
  cost: number;
}

/** Cost of calling an imported function (a JS host or kernel function). */
export const IMPORT_CALL_COST = 100;
/** Base cost of memory.fill/copy/init (a call into the engine), before the length part. */
export const BULK_MEMORY_COST = 50;
/** Base cost of table.fill/copy/init, before the length part. */
export const BULK_TABLE_COST = 100;

function unsupported(_r: Reader, at: number, what: string): never {
  throw new WasmFormatError(`Unsupported instruction: ${what}`, at);
}

const VALTYPES = new Set([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f]);

/** Checks a one-byte value type (numeric, v128, funcref, externref). */
export function valType(r: Reader): number {
  const at = r.pos;
  const t = r.byte();
  if (!VALTYPES.has(t)) {
    throw new WasmFormatError(
      `Unsupported value type 0x${t.toString(16)} (GC/typed references are not supported)`,
      at,
    );
  }
  return t;
}

function blockType(r: Reader): void {
  const b = r.bytes[r.pos];
  if (b === 0x40 || (b !== undefined && VALTYPES.has(b))) {
    r.pos++;
    return;
  }
  const at = r.pos;
  const idx = r.s32();
  if (idx < 0) throw new WasmFormatError("Unsupported block type", at);
}

function memarg(r: Reader): void {
  const at = r.pos;
  const align = r.u32();
  if (align & 0x40) unsupported(r, at, "multi-memory access");
  r.u32(); // offset (memory32)
}

function memIndex(r: Reader): void {
  const at = r.pos;
  if (r.u32() !== 0) unsupported(r, at, "multi-memory access");
}

/**
 * Decodes the instruction at `r.pos` into `d` and moves past it. `importedFuncs` tells
 * calls of imports (cheap for the rewriter: they never touch the fuel counter) apart.
 */
export function decode(r: Reader, d: Decoded, importedFuncs: number): void {
  const at = r.pos;
  const op = r.byte();
  d.imm = 0;
  d.cost = 1;
  d.kind = Kind.Plain;
  if (op >= 0x45 && op <= 0xc4) { // numeric, no immediates
    if (
      op === 0x6d || op === 0x6e || op === 0x6f || op === 0x70 || op === 0x7f || op === 0x80 ||
      op === 0x81 || op === 0x82 || op === 0x91 || op === 0x95 || op === 0x9f || op === 0xa3
    ) d.cost = 4;
    return;
  }
  if (op >= 0x28 && op <= 0x3e) return memarg(r);
  switch (op) {
    case 0x00:
      d.kind = Kind.Unreachable;
      return;
    case 0x01:
      d.cost = 0;
      return;
    case 0x02:
      d.kind = Kind.Block;
      d.cost = 0;
      return blockType(r);
    case 0x03:
      d.kind = Kind.Loop;
      d.cost = 0;
      return blockType(r);
    case 0x04:
      d.kind = Kind.If;
      return blockType(r);
    case 0x05:
      d.kind = Kind.Else;
      d.cost = 0;
      return;
    case 0x0b:
      d.kind = Kind.End;
      d.cost = 0;
      return;
    case 0x0c:
      d.kind = Kind.Br;
      d.imm = r.u32();
      return;
    case 0x0d:
      d.kind = Kind.BrIf;
      d.imm = r.u32();
      return;
    case 0x0e: {
      d.kind = Kind.BrTable;
      let n = r.u32();
      let max = r.u32(); // read the count then n + 1 labels
      for (; n > 0; n--) max = Math.max(max, r.u32());
      d.imm = max;
      d.cost = 2;
      return;
    }
    case 0x0f:
      d.kind = Kind.Return;
      return;
    case 0x10:
    case 0x12: {
      d.imm = r.u32();
      d.kind = op === 0x10 ? Kind.Call : Kind.ReturnCall;
      d.cost = d.imm < importedFuncs ? IMPORT_CALL_COST : 4;
      return;
    }
    case 0x11:
    case 0x13:
      r.u32(); // type
      r.u32(); // table
      d.kind = op === 0x11 ? Kind.CallIndirect : Kind.ReturnCallIndirect;
      d.cost = 6;
      return;
    case 0x1a:
    case 0x1b:
      return;
    case 0x1c: {
      for (let n = r.u32(); n > 0; n--) valType(r);
      return;
    }
    case 0x20:
    case 0x21:
    case 0x22:
    case 0x23:
    case 0x24:
    case 0x25:
    case 0x26:
      r.u32();
      return;
    case 0x3f:
      return memIndex(r);
    case 0x40:
      memIndex(r);
      d.kind = Kind.MemoryGrow;
      d.cost = 100;
      return;
    case 0x41:
      return r.skipLeb(5);
    case 0x42:
      return r.skipLeb(10);
    case 0x43:
      return r.skip(4);
    case 0x44:
      return r.skip(8);
    case 0xd0: {
      const t = r.byte();
      if (t !== 0x70 && t !== 0x6f) unsupported(r, at, "ref.null of a typed reference");
      return;
    }
    case 0xd1:
      return;
    case 0xd2:
      d.kind = Kind.RefFunc;
      d.imm = r.u32();
      return;
    case 0xfc:
      return decodeFc(r, d, at);
    case 0xfd:
      return decodeSimd(r, at);
    case 0xfe:
      return unsupported(r, at, "threads/atomics (0xfe prefix)");
    case 0xfb:
      return unsupported(r, at, "GC (0xfb prefix)");
    case 0x06:
    case 0x07:
    case 0x08:
    case 0x09:
    case 0x0a:
    case 0x18:
    case 0x19:
    case 0x1f:
      return unsupported(r, at, `exception handling (opcode 0x${op.toString(16)})`);
    case 0x14:
    case 0x15:
    case 0xd3:
    case 0xd4:
    case 0xd5:
    case 0xd6:
      return unsupported(r, at, `typed function references (opcode 0x${op.toString(16)})`);
  }
  unsupported(r, at, `unknown opcode 0x${op.toString(16)}`);
}

function decodeFc(r: Reader, d: Decoded, at: number): void {
  const sub = r.u32();
  if (sub <= 7) return; // saturating truncations
  switch (sub) {
    case 8: // memory.init data mem
      r.u32();
      memIndex(r);
      d.kind = Kind.BulkMemory;
      d.cost = BULK_MEMORY_COST;
      return;
    case 9: // data.drop
    case 13: // elem.drop
      r.u32();
      return;
    case 10: // memory.copy mem mem
      memIndex(r);
      memIndex(r);
      d.kind = Kind.BulkMemory;
      d.cost = BULK_MEMORY_COST;
      return;
    case 11: // memory.fill mem
      memIndex(r);
      d.kind = Kind.BulkMemory;
      d.cost = BULK_MEMORY_COST;
      return;
    case 12: // table.init elem table
    case 14: // table.copy dst src
      r.u32();
      r.u32();
      d.kind = Kind.BulkTable;
      d.cost = BULK_TABLE_COST;
      return;
    case 15: // table.grow
      d.imm = r.u32();
      d.kind = Kind.TableGrow;
      d.cost = 100;
      return;
    case 16: // table.size
      r.u32();
      return;
    case 17: // table.fill
      r.u32();
      d.kind = Kind.BulkTable;
      d.cost = BULK_TABLE_COST;
      return;
  }
  unsupported(r, at, `0xfc ${sub}`);
}

function decodeSimd(r: Reader, at: number): void {
  const sub = r.u32();
  if (sub <= 11 || sub === 92 || sub === 93) return memarg(r); // loads, store, load_zero
  if (sub === 12 || sub === 13) return r.skip(16); // v128.const, i8x16.shuffle
  if (sub >= 21 && sub <= 34) return r.skip(1); // extract/replace lane
  if (sub >= 84 && sub <= 91) { // load/store lane
    memarg(r);
    return r.skip(1);
  }
  if (sub <= 0x113) return; // every other SIMD and relaxed-SIMD op has no immediate
  unsupported(r, at, `SIMD 0xfd ${sub}`);
}
