/**
 * Compiles WAT text or `tests/fixtures/wat/<name>.wat` to WASM bytes with `npm:wabt`.
 *
 * @module
 */
import wabtInit from "wabt";

let wabtPromise: ReturnType<typeof wabtInit> | null = null;
const cache = new Map<string, Uint8Array>();

/** Directory of the WAT fixtures. */
export const WAT_DIR: URL = new URL("../fixtures/wat/", import.meta.url);

/**
 * Compiles WAT to a binary module. `source` is WAT text (starts with `(` or `;;`), a
 * fixture name (`"echo"` → `tests/fixtures/wat/echo.wat`) or a path to a `.wat` file.
 */
export async function compileWat(source: string): Promise<Uint8Array> {
  const cached = cache.get(source);
  if (cached) return cached.slice();
  const trimmed = source.trimStart();
  let text: string;
  let name = "inline.wat";
  if (trimmed.startsWith("(") || trimmed.startsWith(";;")) {
    text = source;
  } else {
    const url = source.endsWith(".wat") ? source : new URL(`${source}.wat`, WAT_DIR);
    text = await Deno.readTextFile(url);
    name = String(url);
  }
  wabtPromise ??= wabtInit();
  const wabt = await wabtPromise;
  const mod = wabt.parseWat(name, text, { bulk_memory: true, mutable_globals: true });
  try {
    mod.validate();
    const bytes = new Uint8Array(mod.toBinary({}).buffer);
    cache.set(source, bytes);
    return bytes.slice();
  } finally {
    mod.destroy();
  }
}
