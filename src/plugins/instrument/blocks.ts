/**
 * The pre-pass of the body rewrite (code.ts): the static cost of every metered block of a
 * function body, in the order the rewriter meets the blocks' starts, and where over-long
 * straight-line runs are cut.
 *
 * @module
 */
import { Reader } from "./bytes.ts";
import { decode, type Decoded, Kind } from "./opcodes.ts";

const d: Decoded = { kind: Kind.Plain, imm: 0, cost: 0 };

/**
 * Largest cost charged at once for straight-line code: a longer run (e.g. thousands of host
 * calls in a row) is cut with an extra check, so the deadline is still checked about every
 * refill chunk (the runtime's, 2^18) of work.
 */
export const MAX_BLOCK_COST = 1 << 18;

/**
 * Static costs of the metered blocks of a body, in the order the rewriter meets their
 * starts; `splits` receives the offsets of the instructions before which an over-long
 * straight-line run is cut.
 */
export function blockCosts(
  src: Uint8Array,
  codeStart: number,
  end: number,
  ctx: { importedFuncs: number; indirectCallCost: number },
  splits: number[],
): number[] {
  const imported = ctx.importedFuncs;
  const r = new Reader(src, codeStart, end);
  const costs: number[] = [];
  let cur = 0;
  let dead = false;
  let depth = 0;
  for (;;) {
    const at = r.pos;
    decode(r, d, imported);
    if (d.kind === Kind.CallIndirect || d.kind === Kind.ReturnCallIndirect) {
      d.cost = ctx.indirectCallCost;
    }
    if (!dead && cur > 0 && cur + d.cost > MAX_BLOCK_COST) {
      costs.push(cur);
      splits.push(at);
      cur = 0;
    }
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
