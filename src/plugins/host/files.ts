/**
 * `mr_file_read` / `mr_file_write` with no symlink tricks and no check-then-open gap:
 *
 * - The path as given (made absolute, `..` resolved lexically) must match the grant;
 *   otherwise the call is denied before anything is looked up, so a denial says nothing
 *   about what exists outside the grant. Every denial has the same message.
 * - Reads open first — `O_NOFOLLOW` (a symlink as the last component is refused) and
 *   `O_NONBLOCK` (a FIFO cannot hang the open) — then `fstat` the opened file (only a
 *   regular file is read: FIFOs, sockets and devices are refused) and check the real path
 *   of the open descriptor (`/proc/self/fd/N`, else `realpath` + same inode) against the
 *   grant, so a symlinked directory cannot lead outside. Content is read through a capped
 *   loop that stops at the call's deadline.
 * - Writes go to a new temp file (`O_CREAT|O_EXCL|O_NOFOLLOW`) in the real directory, are
 *   fsynced, then renamed over the target: a symlink (dangling or not) in the target's place
 *   is replaced, never followed. Appends open the target with `O_NOFOLLOW` and check the
 *   descriptor as reads do.
 * - A failure inside the grant is reported (`not_found`, `io_error`); one whose real
 *   location is outside the grant is the uniform denial.
 *
 * @module
 */
import fs from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { matchesAny } from "../paths.ts";
import { HOST_OUTPUT_CAP, MAX_HOST_WRITE_BYTES } from "./limits.ts";
import { HostCallError } from "./errors.ts";

const C = fs.constants;
const enc = new TextEncoder();

/** What the file functions need of the call. */
export interface FileCallContext {
  globs: readonly string[];
  deadline: number;
  signal: AbortSignal;
  /** Throws the uniform denial (and writes the audit line with `detail`). */
  deny(detail: Record<string, unknown>): never;
}

function fdPath(fd: number, abs: string): string | null {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    // no /proc: the real path of the name, if it is still the same file
    try {
      const real = fs.realpathSync(abs);
      const a = fs.statSync(real), b = fs.fstatSync(fd);
      return a.ino === b.ino && a.dev === b.dev ? real : null;
    } catch {
      return null;
    }
  }
}

/** The real path of `abs`: its longest existing prefix resolved, the rest appended. */
function realish(abs: string): string {
  let dir = abs;
  const rest: string[] = [];
  for (;;) {
    try {
      return join(fs.realpathSync(dir), ...rest);
    } catch {
      const parent = dirname(dir);
      if (parent === dir) return abs;
      rest.unshift(basename(dir));
      dir = parent;
    }
  }
}

function failure(ctx: FileCallContext, abs: string, path: string, err: unknown): never {
  if (!matchesAny(realish(abs), ctx.globs)) ctx.deny({ path, error: String(err) });
  const code = (err as { code?: string }).code;
  if (code === "ENOENT" || code === "ENOTDIR") {
    throw new HostCallError("not_found", `No such file: "${path}"`);
  }
  if (code === "ELOOP") ctx.deny({ path, symlink: true });
  throw new HostCallError("io_error", `Cannot access "${path}": ${code ?? String(err)}`);
}

function checkDeadline(ctx: FileCallContext, path: string): void {
  if (ctx.signal.aborted || Date.now() > ctx.deadline) {
    throw new HostCallError("timeout", `Reading "${path}" passed the call's deadline`);
  }
}

function readFd(fd: number, buf: Uint8Array, off: number): Promise<number> {
  return new Promise((res, rej) =>
    fs.read(fd, buf, off, buf.length - off, null, (err, n) => err ? rej(err) : res(n))
  );
}

/** `mr_file_read`: the content of a granted regular file, at most {@linkcode HOST_OUTPUT_CAP} bytes. */
export async function readGrantedFile(ctx: FileCallContext, path: string): Promise<string> {
  const abs = resolve(path);
  if (!matchesAny(abs, ctx.globs)) ctx.deny({ path });
  let fd: number;
  try {
    fd = fs.openSync(abs, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (err) {
    failure(ctx, abs, path, err);
  }
  try {
    const real = fdPath(fd, abs);
    if (real === null || !matchesAny(real, ctx.globs)) ctx.deny({ path, resolved: real });
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      throw new HostCallError("invalid_input", `Not a regular file: "${path}"`);
    }
    if (st.size > HOST_OUTPUT_CAP) {
      throw new HostCallError(
        "payload_too_large",
        `File is larger than ${HOST_OUTPUT_CAP} bytes: "${path}"`,
      );
    }
    const buf = new Uint8Array(HOST_OUTPUT_CAP + 1);
    let n = 0;
    for (;;) {
      checkDeadline(ctx, path);
      const got = await readFd(fd, buf, n);
      if (got === 0) break;
      n += got;
      if (n > HOST_OUTPUT_CAP) {
        throw new HostCallError(
          "payload_too_large",
          `File is larger than ${HOST_OUTPUT_CAP} bytes: "${path}"`,
        );
      }
    }
    return new TextDecoder().decode(buf.subarray(0, n));
  } catch (err) {
    if (err instanceof HostCallError) throw err;
    throw new HostCallError("io_error", `Cannot read "${path}": ${(err as Error).message}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** `mr_file_write`: replaces (or appends to) a granted regular file; returns bytes written. */
export function writeGrantedFile(
  ctx: FileCallContext,
  path: string,
  content: string,
  append: boolean,
): number {
  const bytes = enc.encode(content);
  if (bytes.length > MAX_HOST_WRITE_BYTES) {
    throw new HostCallError(
      "payload_too_large",
      `Content is ${bytes.length} bytes, more than ${MAX_HOST_WRITE_BYTES}`,
    );
  }
  const abs = resolve(path);
  if (!matchesAny(abs, ctx.globs)) ctx.deny({ path });
  let dir: string;
  try {
    dir = fs.realpathSync(dirname(abs));
  } catch (err) {
    failure(ctx, abs, path, err);
  }
  const target = join(dir, basename(abs));
  if (!matchesAny(target, ctx.globs)) ctx.deny({ path, resolved: target });
  let existing: fs.Stats | null = null;
  try {
    existing = fs.lstatSync(target);
  } catch { /* a new file */ }
  if (existing?.isSymbolicLink()) ctx.deny({ path, symlink: true });
  if (existing && !existing.isFile()) {
    throw new HostCallError("invalid_input", `Not a regular file: "${path}"`);
  }
  try {
    if (append) {
      const fd = fs.openSync(
        target,
        C.O_WRONLY | C.O_APPEND | C.O_CREAT | C.O_NOFOLLOW | C.O_NONBLOCK,
        0o644,
      );
      try {
        const real = fdPath(fd, target);
        if (real === null || !matchesAny(real, ctx.globs)) ctx.deny({ path, resolved: real });
        if (!fs.fstatSync(fd).isFile()) {
          throw new HostCallError("invalid_input", `Not a regular file: "${path}"`);
        }
        fs.writeSync(fd, bytes);
      } finally {
        fs.closeSync(fd);
      }
      return bytes.length;
    }
    const tmp = join(dir, `.${basename(abs)}.${crypto.randomUUID().slice(0, 8)}.mr-tmp`);
    const fd = fs.openSync(
      tmp,
      C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW,
      existing ? existing.mode & 0o777 : 0o644,
    );
    try {
      const real = fdPath(fd, tmp);
      if (real === null || dirname(real) !== dir) ctx.deny({ path, resolved: real });
      let off = 0;
      while (off < bytes.length) off += fs.writeSync(fd, bytes, off);
      fs.fsyncSync(fd);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    fs.closeSync(fd);
    try {
      fs.renameSync(tmp, target);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    return bytes.length;
  } catch (err) {
    if (err instanceof HostCallError) throw err;
    const code = (err as { code?: string }).code;
    if (code === "ELOOP") ctx.deny({ path, symlink: true });
    throw new HostCallError("io_error", `Cannot write "${path}": ${code ?? String(err)}`);
  }
}
