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
  const mod = wabt.parseWat(name, text, {
    bulk_memory: true,
    mutable_globals: true,
    tail_call: true,
  });
  try {
    mod.validate();
    const bytes = new Uint8Array(mod.toBinary({}).buffer);
    cache.set(source, bytes);
    return bytes.slice();
  } finally {
    mod.destroy();
  }
}

/** A sandbox for tests, with captured service lines and logs, disposed with `await using`. */
export interface TestSandbox extends AsyncDisposable {
  sandbox: import("../../src/plugins/types.ts").Sandbox;
  dir: string;
  /** JSON lines printed by the printing HostServices. */
  lines: string[];
  /** Log lines (JSON). */
  logs: string[];
}

/** Starts a sandbox over a temp state dir with printing services. */
export async function setupSandbox(
  options: { threads?: number; processMemoryMb?: number; killGraceMs?: number } = {},
): Promise<TestSandbox> {
  const { createSandbox, createPrintingServices } = await import("../../src/plugins/mod.ts");
  const { createLogger } = await import("../../src/log/logger.ts");
  const dir = await Deno.makeTempDir({ prefix: "mr-sandbox-" });
  const lines: string[] = [];
  const logs: string[] = [];
  const sandbox = await createSandbox({
    stateDir: dir,
    services: createPrintingServices((l) => lines.push(l)),
    logger: createLogger({ level: "debug", write: (l) => logs.push(l) }),
    ...(options.threads ? { threads: options.threads } : {}),
    ...(options.processMemoryMb ? { processMemoryMb: options.processMemoryMb } : {}),
    ...(options.killGraceMs ? { killGraceMs: options.killGraceMs } : {}),
  });
  return {
    sandbox,
    dir,
    lines,
    logs,
    async [Symbol.asyncDispose]() {
      await sandbox.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
