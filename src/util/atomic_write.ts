/**
 * Replacing a file so that a crash at any moment leaves either the old or the new content,
 * never a torn one: write a temp file in the same directory, fsync it, rename it over the
 * target, then fsync the directory so the rename itself is durable.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/** Options for {@linkcode atomicWrite}. */
export interface AtomicWriteOptions {
  /** File mode of the new file (applied regardless of the umask). @default {0o600} */
  mode?: number;
  /**
   * fsync the file and the directory. Off only for data that may be lost on power failure
   * (a cache that is rebuilt anyway). @default {true}
   */
  sync?: boolean;
}

const encoder = new TextEncoder();

/**
 * Writes `data` to `path` atomically and durably.
 *
 * @example
 * ```ts
 * await atomicWrite("/var/lib/mr/identity/node.creds", creds); // 0600
 * await atomicWrite("/var/lib/mr/config.json", json, { mode: 0o644 });
 * ```
 */
export async function atomicWrite(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  const sync = options.sync ?? true;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    try {
      await Deno.chmod(tmp, mode); // the umask may have narrowed it
      let off = 0;
      while (off < bytes.byteLength) off += await file.write(bytes.subarray(off));
      if (sync) await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  if (sync) await syncDir(dir);
}

/** Writes a temp file for `path`, then lets `fill` write it (e.g. by streaming), then renames. */
export async function atomicReplace(
  path: string,
  fill: (file: Deno.FsFile) => Promise<void>,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  const sync = options.sync ?? true;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  const file = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    try {
      await Deno.chmod(tmp, mode);
      await fill(file);
      if (sync) await file.sync();
    } finally {
      try {
        file.close();
      } catch { /* closed by fill */ }
    }
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  if (sync) await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  // A directory fsync makes the rename durable on Linux; elsewhere opening a directory may be
  // refused, and the rename is still atomic.
  let d: Deno.FsFile;
  try {
    d = await Deno.open(dir, { read: true });
  } catch {
    return;
  }
  try {
    await d.sync();
  } catch {
    /* not supported on this platform/filesystem */
  } finally {
    d.close();
  }
}
