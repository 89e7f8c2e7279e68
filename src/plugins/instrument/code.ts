/**
 * Rewrites one function body with fuel metering (the design of paritytech/wasm-instrument's
 * gas metering, with a function-local counter).
 *
 * - **Metered blocks.** A body is cut at every point control can enter other than by
 *   falling through: the function entry, the start of a `loop` body, of an `if` and `else`
 *   arm, and after every `end`. The sum of the static costs (opcodes.ts) of a block's
 *   instructions is charged once, at its start, before any of them runs. Code after an
 *   unconditional branch (`br`, `br_table`, `return`, `unreachable`, tail calls) up to the
 *   next cut never runs and is not charged; code after a `br_if` is charged with the block
 *   (an overcharge when the branch is taken, never an undercharge).
 * - **Bulk operations** (`memory.fill/copy/init`, `table.fill/copy/init`, `memory.grow`,
 *   `table.grow`) are charged by their length operand at run time, before they execute:
 *   the length is copied with `local.tee` into a fresh local and `len/4` (bytes),
 *   `min(len, 2^24)×32` (table entries; for `table.grow` the table's current size is added,
 *   since V8 copies it), or `min(len, 65536)×16384` (pages) is subtracted.
 * - **Counter.** The function keeps the fuel left of the current chunk in a local (a
 *   register in the hot loop), loaded from the module's fuel global at entry and written
 *   back before every call of a module function (and reloaded after it), before `return`,
 *   before a branch to the function's own label and at the final `end`. A charge is
 *   `fl -= cost; if (fl < 0) fl = refuel(fl)` (the `if` carries a branch hint "unlikely");
 *   `refuel` asks the runtime's `refill` import for chunks until the deficit is covered or
 *   the runtime answers 0 (deadline passed or budget spent), then traps.
 *
 * Invariant that keeps i32 arithmetic exact: after every check `0 ≤ fl ≤ chunk (2^20)`,
 * and no single charge exceeds 2^30, so `fl - cost` never overflows.
 *
 * @module
 */
import { Reader, WasmFormatError, type Writer } from "./bytes.ts";
import { decode, type Decoded, Kind, valType } from "./opcodes.ts";

/** Module-level facts the rewriter needs. */
export interface CodeContext {
  /** Imported functions in the original module (their indices do not move). */
  importedFuncs: number;
  /** Index of the fuel global. */
  fuelGlobal: number;
  /** Index of the internal `refuel(i32) -> i32` function. */
  refuel: number;
}

/**
 * Added to every charged block: the check itself (7 instructions) costs about as much as a
 * short block in V8's baseline tier.
 */
export const CHECK_COST = 2;

/** V8's limit on locals per function. */
const MAX_LOCALS = 50_000;

const d: Decoded = { kind: Kind.Plain, imm: 0, cost: 0 };

/** Static costs of the metered blocks of a body, in the order the rewriter meets their starts. */
function blockCosts(src: Uint8Array, codeStart: number, end: number, imported: number): number[] {
  const r = new Reader(src, codeStart, end);
  const costs: number[] = [];
  let cur = 0;
  let dead = false;
  let depth = 0;
  for (;;) {
    decode(r, d, imported);
    switch (d.kind) {
      case Kind.Block:
        depth++;
        break;
      case Kind.Loop:
        depth++;
        costs.push(cur);
        cur = 0;
        dead = false;
        break;
      case Kind.If:
        if (!dead) cur += d.cost;
        depth++;
        costs.push(cur);
        cur = 0;
        dead = false;
        break;
      case Kind.Else:
        costs.push(cur);
        cur = 0;
        dead = false;
        break;
      case Kind.End:
        costs.push(cur);
        if (depth === 0) {
          if (r.pos !== end) r.fail("Function body continues after its final end");
          return costs;
        }
        depth--;
        cur = 0;
        dead = false;
        break;
      case Kind.Br:
      case Kind.BrTable:
      case Kind.Return:
      case Kind.Unreachable:
      case Kind.ReturnCall:
      case Kind.ReturnCallIndirect:
        if (!dead) cur += d.cost;
        dead = true;
        break;
      default:
        if (!dead) cur += d.cost;
    }
  }
}

/**
 * Appends the rewritten body (size-prefixed) of the function whose body is
 * `src[start, end)` to `out`; `scratch` is a reusable buffer. Returns the offsets (from
 * the start of the body, after its size) of the fuel checks' `if` opcodes.
 */
export function rewriteBody(
  src: Uint8Array,
  start: number,
  end: number,
  params: number,
  ctx: CodeContext,
  out: Writer,
  scratch: Writer,
): number[] {
  const r = new Reader(src, start, end);
  const groups = r.u32();
  let locals = params;
  const groupsStart = r.pos;
  for (let g = 0; g < groups; g++) {
    locals += r.u32();
    valType(r);
    if (locals + 2 > MAX_LOCALS) r.fail(`Function has more than ${MAX_LOCALS - 2} locals`);
  }
  const codeStart = r.pos;
  const costs = blockCosts(src, codeStart, end, ctx.importedFuncs);
  const FL = locals;
  const LEN = locals + 1;
  const G = ctx.fuelGlobal;
  const imported = ctx.importedFuncs;
  const hints: number[] = [];
  const w = scratch;
  w.len = 0;
  w.u32(groups + 1).bytes(src, groupsStart, codeStart).byte(2).byte(0x7f);
  const check = () => {
    // local.tee $fl; i32.const 0; i32.lt_s; if (unlikely) local.get $fl; call $refuel; local.set $fl; end
    w.byte(0x22).u32(FL).byte(0x41).byte(0).byte(0x48);
    hints.push(w.len);
    w.byte(0x04).byte(0x40).byte(0x20).u32(FL).byte(0x10).u32(ctx.refuel).byte(0x21).u32(FL)
      .byte(0x0b);
  };
  let bi = 0;
  const charge = () => {
    const c = costs[bi++]!;
    if (c === 0) return;
    // local.get $fl; i32.const c; i32.sub (the check's own work is part of the cost)
    w.byte(0x20).u32(FL).byte(0x41).s32(c + CHECK_COST).byte(0x6b);
    check();
  };
  const flush = () => w.byte(0x20).u32(FL).byte(0x24).u32(G);
  const reload = () => w.byte(0x23).u32(G).byte(0x21).u32(FL);
  /** Pushes min(x, cap) as unsigned, x being what `push` leaves on the stack (twice). */
  const min = (push: () => void, cap: number) => {
    push();
    w.byte(0x41).s32(cap);
    push();
    w.byte(0x41).s32(cap).byte(0x49).byte(0x1b); // i32.lt_u; select
  };
  const len = () => w.byte(0x20).u32(LEN);
  /**
   * `fl -= f(len)` where len (the operand on top of the stack, kept there) is first copied
   * into $len; `f` pushes the cost from it.
   */
  const chargeLength = (f: () => void) => {
    w.byte(0x22).u32(LEN).byte(0x20).u32(FL);
    f();
    w.byte(0x6b);
    check();
  };
  const shl = (n: number) => w.byte(0x41).byte(n).byte(0x74);
  reload();
  charge();
  let depth = 0;
  r.pos = codeStart;
  for (;;) {
    const s = r.pos;
    decode(r, d, imported);
    const e = r.pos;
    switch (d.kind) {
      case Kind.Block:
        depth++;
        w.bytes(src, s, e);
        break;
      case Kind.Loop:
      case Kind.If:
        depth++;
        w.bytes(src, s, e);
        charge();
        break;
      case Kind.Else:
        w.bytes(src, s, e);
        charge();
        break;
      case Kind.End:
        if (depth === 0) {
          flush();
          w.byte(0x0b);
          if (bi !== costs.length) throw new WasmFormatError("Metered block mismatch", s);
          out.u32(w.len).bytes(w.buf, 0, w.len);
          return hints;
        }
        depth--;
        w.byte(0x0b);
        charge();
        break;
      case Kind.Br:
      case Kind.BrIf:
      case Kind.BrTable:
        if (d.imm >= depth) flush(); // leaves the function
        w.bytes(src, s, e);
        break;
      case Kind.Return:
        flush();
        w.byte(0x0f);
        break;
      case Kind.Call:
        if (d.imm < imported) w.bytes(src, s, e);
        else {
          flush();
          w.byte(0x10).u32(d.imm + 1);
          reload();
        }
        break;
      case Kind.ReturnCall:
        if (d.imm < imported) w.bytes(src, s, e);
        else {
          flush();
          w.byte(0x12).u32(d.imm + 1);
        }
        break;
      case Kind.CallIndirect:
        flush();
        w.bytes(src, s, e);
        reload();
        break;
      case Kind.ReturnCallIndirect:
        flush();
        w.bytes(src, s, e);
        break;
      case Kind.RefFunc:
        w.byte(0xd2).u32(d.imm < imported ? d.imm : d.imm + 1);
        break;
      case Kind.BulkMemory: // len / 4 (bytes)
        chargeLength(() => len().byte(0x41).byte(2).byte(0x76));
        w.bytes(src, s, e);
        break;
      case Kind.MemoryGrow: // min(pages, 65536) × 16384
        chargeLength(() => (min(len, 65536), shl(14)));
        w.bytes(src, s, e);
        break;
      case Kind.BulkTable: // min(len, 2^24) × 32
        chargeLength(() => (min(len, 1 << 24), shl(5)));
        w.bytes(src, s, e);
        break;
      case Kind.TableGrow: { // min(min(delta, 2^24) + size, 2^24) × 32: V8 copies the table
        const table = d.imm;
        const grown = () => {
          min(len, 1 << 24);
          w.byte(0xfc).u32(16).u32(table).byte(0x6a); // table.size; i32.add
        };
        chargeLength(() => (min(grown, 1 << 24), shl(5)));
        w.bytes(src, s, e);
        break;
      }
      default:
        w.bytes(src, s, e);
    }
  }
}
