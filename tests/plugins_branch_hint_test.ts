// Fuel checks carry a branch hint (src/plugins/instrument/code.ts, module.ts): the section
// is well-formed, sits before the code section, every hint points at the `if` of a fuel
// check (`local.tee $fl; i32.const 0; i32.lt_s; if`, or `br_if` out of a loop header), the
// module validates, and the real
// example agents get hints too.
import { assert, assertEquals } from "@std/assert";
import { BRANCH_HINT_SECTION, instrumentModule } from "../src/plugins/instrument.ts";
import { compileWat } from "./helpers/wat.ts";

function leb(b: Uint8Array, p: number): [number, number] {
  let r = 0, s = 0, x;
  do {
    x = b[p++]!;
    r += (x & 0x7f) * 2 ** s;
    s += 7;
  } while (x & 0x80);
  return [r, p];
}

/** Sections as [id, name, contentStart, end]. */
function sections(w: Uint8Array): [number, string, number, number][] {
  const out: [number, string, number, number][] = [];
  let p = 8;
  while (p < w.length) {
    const id = w[p]!;
    const [size, start] = leb(w, p + 1);
    let name = "";
    let c = start;
    if (id === 0) {
      const [n, s2] = leb(w, start);
      name = new TextDecoder().decode(w.subarray(s2, s2 + n));
      c = s2 + n;
    }
    out.push([id, name, c, start + size]);
    p = start + size;
  }
  return out;
}

function checkHints(wasm: Uint8Array): number {
  const out = instrumentModule(wasm, { maxPages: 64 });
  assert(WebAssembly.validate(out as Uint8Array<ArrayBuffer>), "the instrumented module validates");
  const secs = sections(out);
  const hi = secs.findIndex(([id, name]) => id === 0 && name === BRANCH_HINT_SECTION);
  const ci = secs.findIndex(([id]) => id === 10);
  assert(hi >= 0 && hi < ci, "the hint section comes before the code section");
  // function bodies by function index
  const imported =
    WebAssembly.Module.imports(new WebAssembly.Module(out as Uint8Array<ArrayBuffer>))
      .filter((i) => i.kind === "function").length;
  const bodies: [number, number][] = [];
  let [count, p] = leb(out, secs[ci]![2]);
  for (; count > 0; count--) {
    const [len, start] = leb(out, p);
    bodies.push([start, start + len]);
    p = start + len;
  }
  let [nf, q] = leb(out, secs[hi]![2]);
  let hints = 0;
  let lastFn = -1;
  for (; nf > 0; nf--) {
    let fn: number, nh: number;
    [fn, q] = leb(out, q);
    assert(fn > lastFn, "functions in increasing order");
    lastFn = fn;
    [nh, q] = leb(out, q);
    const [start, end] = bodies[fn - imported]!;
    for (; nh > 0; nh--) {
      let off: number;
      [off, q] = leb(out, q);
      assertEquals(out[q], 1, "hint size 1");
      assertEquals(out[q + 1], 0, "hint: unlikely");
      q += 2;
      assert(start + off < end);
      assert([0x04, 0x0d].includes(out[start + off]!), "the hint points at an if or br_if");
      assertEquals(out[start + off - 1], 0x48, "…of a fuel check (i32.lt_s before it)");
      assertEquals([out[start + off - 3], out[start + off - 2]], [0x41, 0x00], "…against 0");
      hints++;
    }
  }
  return hints;
}

Deno.test("instrument - fuel checks are hinted unlikely (runaway fixture and the example agents)", async () => {
  assert(checkHints(await compileWat("runaway")) >= 10);
  const dist = new URL("../wasm-examples/dist/", import.meta.url);
  let examples = 0;
  for await (const e of Deno.readDir(dist)) {
    if (!e.name.endsWith(".wasm")) continue;
    assert(checkHints(await Deno.readFile(new URL(e.name, dist))) > 0, e.name);
    examples++;
  }
  assert(examples >= 4, "the four example agents were checked");
});
