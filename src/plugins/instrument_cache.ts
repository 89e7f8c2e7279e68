/**
 * On-disk cache of instrumented modules, keyed by the module's sha256, the instrumenter
 * version and the caps, so loading the same module again skips the rewrite.
 *
 * Layout: `<dir>/<module sha256>-<key>.wasm`, mode 0600 in a 0700 directory, written
 * atomically (temp file + rename; not fsynced: a lost entry is rebuilt); at most
 * {@linkcode INSTRUMENT_CACHE_MAX_ENTRIES} entries, the oldest written removed first. Each file starts
 * with the sha256 of the instrumented bytes that follow; an entry whose digest does not
 * match (torn, tampered) is ignored and rewritten.
 *
 * @module
 */
import { join } from "node:path";
import { atomicWrite } from "../util/atomic_write.ts";
import { sha256Hex } from "./abi.ts";
import { INSTRUMENTER_VERSION, instrumentModule, type InstrumentOptions } from "./instrument.ts";

/** Subdirectory of the state directory holding the cache. */
export const INSTRUMENT_CACHE_DIR = "instrument-cache";
/** Entries kept; beyond it the least recently written are removed (module upgrades pile up). */
export const INSTRUMENT_CACHE_MAX_ENTRIES = 128;

async function digest(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The cache file of `wasm` under `options` (exported for tests). */
export async function cachePath(
  dir: string,
  wasm: Uint8Array,
  options: InstrumentOptions,
): Promise<string> {
  const key = JSON.stringify([
    INSTRUMENTER_VERSION,
    options.maxPages,
    options.maxTableEntries ?? null,
  ]);
  const k = (await sha256Hex(new TextEncoder().encode(key))).slice(0, 16);
  return join(dir, `${await sha256Hex(wasm)}-${k}.wasm`);
}

/**
 * {@linkcode instrumentModule} through the cache in `dir` (created 0700 when missing).
 * Errors of the instrumenter propagate (and nothing is cached); a cache that cannot be
 * read or written only costs the rewrite.
 */
export async function instrumentCached(
  wasm: Uint8Array,
  options: InstrumentOptions,
  dir: string,
  maxEntries: number = INSTRUMENT_CACHE_MAX_ENTRIES,
): Promise<Uint8Array> {
  const path = await cachePath(dir, wasm, options);
  try {
    const file = await Deno.readFile(path);
    const body = file.subarray(32);
    if (sameBytes(file.subarray(0, 32), await digest(body))) return body;
  } catch {
    // missing or unreadable entry: rebuild it below
  }
  const out = instrumentModule(wasm, options);
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const file = new Uint8Array(32 + out.length);
    file.set(await digest(out), 0);
    file.set(out, 32);
    await atomicWrite(path, file, { mode: 0o600, sync: false });
    await prune(dir, maxEntries);
  } catch {
    // a read-only or full state dir: the module still loads, only uncached
  }
  return out;
}

async function prune(dir: string, maxEntries: number): Promise<void> {
  const entries: { path: string; mtime: number }[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(".wasm") || e.name.startsWith(".")) continue;
    const path = join(dir, e.name);
    const st = await Deno.stat(path).catch(() => null);
    if (st) entries.push({ path, mtime: st.mtime?.getTime() ?? 0 });
  }
  if (entries.length <= maxEntries) return;
  entries.sort((a, b) => a.mtime - b.mtime);
  for (const e of entries.slice(0, entries.length - maxEntries)) {
    await Deno.remove(e.path).catch(() => {});
  }
}
