/**
 * The file operations of WASI as a plain-data interface ({@linkcode FsOps}), so that the
 * guest's side (memory marshalling, in the sandbox host process, which has no file-system
 * permission) and the grant-checked file access (in the daemon) can live in different
 * processes: {@linkcode LocalFs} runs them on an {@linkcode FdTable}; `fs_remote.ts` carries
 * them as `wasi_fs` host calls.
 *
 * @module
 */
import nodeFs from "node:fs";
import { join } from "node:path";
import { Errno, FileType } from "./errno.ts";
import { errnoOf, type FdEntry, FdTable, fileTypeOf, type FsLimits } from "./fs.ts";
import { allowed, type Preopen, visible } from "./paths.ts";
import type { DenyHook } from "./fs.ts";

/** A file's stat, times in ms. */
export interface Stat {
  dev: number;
  ino: number;
  type: number;
  nlink: number;
  size: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** One result: an errno, or a value. */
export type R<T> = Errno | T;

/** The file operations behind `fd_*` / `path_*` (descriptors 3 and up). */
export interface FsOps {
  prestat(fd: number): R<{ name: string }>;
  fdstat(fd: number): R<{ type: number; flags: number; base: string; inheriting: string }>;
  filestat(fd: number): R<Stat>;
  pathStat(fd: number, follow: boolean, path: string): R<Stat>;
  open(
    fd: number,
    follow: boolean,
    path: string,
    oflags: number,
    rightsBase: string,
    fdflags: number,
  ): R<{ fd: number }>;
  close(fd: number): Errno;
  read(fd: number, len: number, at: number | null): R<{ data: Uint8Array }>;
  write(fd: number, data: Uint8Array, at: number | null): R<{ n: number }>;
  seek(fd: number, offset: number, whence: number): R<{ pos: number }>;
  sync(fd: number, dataOnly: boolean): Errno;
  advise(fd: number): Errno;
  allocate(fd: number): Errno;
  setSize(fd: number, size: number): Errno;
  setTimes(fd: number, atimeMs: number, mtimeMs: number): Errno;
  pathSetTimes(fd: number, path: string, atimeMs: number, mtimeMs: number): Errno;
  readdir(fd: number, cookie: number): R<{ entries: { name: string; type: number }[] }>;
  renumber(from: number, to: number): Errno;
  mkdir(fd: number, path: string): Errno;
  rmdir(fd: number, path: string): Errno;
  unlink(fd: number, path: string): Errno;
  rename(fd: number, path: string, toFd: number, toPath: string): Errno;
  readlink(fd: number, path: string): R<{ target: string }>;
  /** Closes everything (unload). */
  closeAll(): void;
}

function statOfNode(st: nodeFs.Stats): Stat {
  return {
    dev: st.dev,
    ino: st.ino,
    type: st.isFile()
      ? FileType.REGULAR_FILE
      : st.isDirectory()
      ? FileType.DIRECTORY
      : st.isSymbolicLink()
      ? FileType.SYMBOLIC_LINK
      : FileType.UNKNOWN,
    nlink: st.nlink,
    size: st.size,
    atimeMs: st.atimeMs,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
  };
}

function statOf(st: Deno.FileInfo): Stat {
  return {
    dev: st.dev ?? 0,
    ino: st.ino ?? 0,
    type: fileTypeOf(st),
    nlink: st.nlink ?? 1,
    size: st.size,
    atimeMs: st.atime?.getTime() ?? 0,
    mtimeMs: st.mtime?.getTime() ?? 0,
    ctimeMs: (st.birthtime ?? st.mtime)?.getTime() ?? 0,
  };
}

function attempt(fn: () => void): Errno {
  try {
    fn();
    return Errno.SUCCESS;
  } catch (err) {
    return errnoOf(err);
  }
}

/** {@linkcode FsOps} on a descriptor table, with synchronous Deno file APIs. */
export class LocalFs implements FsOps {
  readonly fds: FdTable;
  constructor(preopens: readonly Preopen[], limits: FsLimits, onDeny: DenyHook) {
    this.fds = new FdTable(preopens, limits, onDeny);
  }

  #file(fd: number): FdEntry | Errno {
    const e = this.fds.get(fd);
    if (!e) return Errno.BADF;
    if (e.kind !== "file") return e.kind === "dir" ? Errno.ISDIR : Errno.SPIPE;
    return e;
  }
  #forWrite(fn: string, fd: number, rel: string, mayCreate: boolean) {
    const d = this.fds.dir(fd);
    if (typeof d === "number") return d;
    return this.fds.resolve(fn, d, rel, (p, x) => allowed(p, x, "write"), false, mayCreate);
  }
  #stat(fn: string, fd: number, follow: boolean, rel: string) {
    const d = this.fds.dir(fd);
    if (typeof d === "number") return d;
    return this.fds.resolve(fn, d, rel, (p, x) => visible(p, x), follow);
  }

  prestat(fd: number): R<{ name: string }> {
    const e = this.fds.get(fd);
    return e?.guest !== undefined ? { name: e.guest } : Errno.BADF;
  }
  fdstat(fd: number) {
    const e = this.fds.get(fd);
    if (!e) return Errno.BADF;
    const type = e.kind === "stdio"
      ? FileType.CHARACTER_DEVICE
      : e.kind === "dir"
      ? FileType.DIRECTORY
      : FileType.REGULAR_FILE;
    const rights = this.fds.rights(e);
    return {
      type,
      flags: e.append ? 1 : 0,
      base: String(rights),
      inheriting: String(e.kind === "dir" ? rights : 0n),
    };
  }
  filestat(fd: number): R<Stat> {
    const e = this.fds.get(fd);
    if (!e) return Errno.BADF;
    try {
      return e.fd !== undefined
        ? statOfNode(nodeFs.fstatSync(e.fd))
        : statOf(Deno.statSync(e.host));
    } catch (err) {
      return errnoOf(err);
    }
  }
  pathStat(fd: number, follow: boolean, path: string): R<Stat> {
    const r = this.#stat("path_filestat_get", fd, follow, path);
    if (typeof r === "number") return r;
    try {
      return statOf(follow ? Deno.statSync(r.host) : Deno.lstatSync(r.host));
    } catch (err) {
      return errnoOf(err);
    }
  }
  open(fd: number, follow: boolean, path: string, oflags: number, base: string, fdflags: number) {
    return this.fds.open(fd, follow, path, oflags, BigInt(base), fdflags);
  }
  close(fd: number): Errno {
    return this.fds.close(fd);
  }
  read(fd: number, len: number, at: number | null): R<{ data: Uint8Array }> {
    const e = this.#file(fd);
    if (typeof e === "number") return e;
    const buf = new Uint8Array(Math.min(len, this.fds.limits.maxFileBytes));
    const r = this.fds.readFile(e, [buf], at ?? undefined);
    return typeof r === "number" ? r : { data: buf.subarray(0, r.n) };
  }
  write(fd: number, data: Uint8Array, at: number | null): R<{ n: number }> {
    const e = this.#file(fd);
    if (typeof e === "number") return e;
    return this.fds.writeFile(e, [data], at ?? undefined);
  }
  seek(fd: number, offset: number, whence: number): R<{ pos: number }> {
    const e = this.#file(fd);
    if (typeof e === "number") return e;
    if (whence > 2 || whence < 0 || !Number.isSafeInteger(offset)) return Errno.INVAL;
    try {
      const base = whence === 0 ? 0 : whence === 1 ? e.pos : nodeFs.fstatSync(e.fd!).size;
      if (base + offset < 0) return Errno.INVAL;
      e.pos = base + offset;
      return { pos: e.pos };
    } catch (err) {
      return errnoOf(err);
    }
  }
  sync(fd: number, dataOnly: boolean): Errno {
    const e = this.#file(fd);
    if (typeof e === "number") return e;
    if (!e.writable) return Errno.SUCCESS;
    return attempt(() => dataOnly ? nodeFs.fdatasyncSync(e.fd!) : nodeFs.fsyncSync(e.fd!));
  }
  advise(fd: number): Errno {
    const e = this.#file(fd);
    return typeof e === "number" ? e : Errno.SUCCESS;
  }
  allocate(fd: number): Errno {
    const e = this.#file(fd);
    return typeof e === "number" ? e : Errno.NOTSUP;
  }
  setSize(fd: number, size: number): Errno {
    const e = this.#file(fd);
    if (typeof e === "number") return e;
    if (!e.writable) return Errno.BADF;
    if (size > this.fds.limits.maxFileBytes) return Errno.FBIG;
    return attempt(() => nodeFs.ftruncateSync(e.fd!, size));
  }
  setTimes(fd: number, atimeMs: number, mtimeMs: number): Errno {
    const e = this.#file(fd);
    if (typeof e === "number") return e;
    if (!e.writable) return Errno.BADF;
    return attempt(() => nodeFs.futimesSync(e.fd!, atimeMs / 1000, mtimeMs / 1000));
  }
  pathSetTimes(fd: number, path: string, atimeMs: number, mtimeMs: number): Errno {
    const r = this.#forWrite("path_filestat_set_times", fd, path, false);
    if (typeof r === "number") return r;
    return attempt(() => Deno.utimeSync(r.host, atimeMs / 1000, mtimeMs / 1000));
  }
  readdir(fd: number, cookie: number) {
    const e = this.fds.get(fd);
    if (!e) return Errno.BADF;
    if (e.kind !== "dir" || !e.preopen) return Errno.NOTDIR;
    try {
      const entries = [...Deno.readDirSync(e.host)]
        .filter((d) => visible(e.preopen!, join(e.host, d.name)))
        .map((d) => ({
          name: d.name,
          type: d.isDirectory
            ? FileType.DIRECTORY
            : d.isFile
            ? FileType.REGULAR_FILE
            : d.isSymlink
            ? FileType.SYMBOLIC_LINK
            : FileType.UNKNOWN,
        }))
        .sort((a, b) => a.name < b.name ? -1 : 1);
      return { entries: entries.slice(cookie, cookie + 256) };
    } catch (err) {
      return errnoOf(err);
    }
  }
  renumber(from: number, to: number): Errno {
    const a = this.fds.get(from);
    const b = this.fds.get(to);
    if (!a || !b) return Errno.BADF;
    if (
      a.kind === "stdio" || b.kind === "stdio" || a.guest !== undefined || b.guest !== undefined
    ) {
      return Errno.NOTSUP;
    }
    this.fds.close(to);
    this.fds.fds.set(to, a);
    this.fds.fds.delete(from);
    return Errno.SUCCESS;
  }
  mkdir(fd: number, path: string): Errno {
    const r = this.#forWrite("path_create_directory", fd, path, true);
    if (typeof r === "number") return r;
    if (r.exists) return Errno.EXIST;
    return attempt(() => Deno.mkdirSync(r.host));
  }
  rmdir(fd: number, path: string): Errno {
    const r = this.#forWrite("path_remove_directory", fd, path, false);
    if (typeof r === "number") return r;
    try {
      if (!Deno.lstatSync(r.host).isDirectory) return Errno.NOTDIR;
      const d = this.fds.dir(fd);
      if (typeof d !== "number" && r.host === d.host) return Errno.INVAL;
      if ([...Deno.readDirSync(r.host)].length > 0) return Errno.NOTEMPTY;
      Deno.removeSync(r.host);
      return Errno.SUCCESS;
    } catch (err) {
      return errnoOf(err);
    }
  }
  unlink(fd: number, path: string): Errno {
    const r = this.#forWrite("path_unlink_file", fd, path, false);
    if (typeof r === "number") return r;
    try {
      if (Deno.lstatSync(r.host).isDirectory) return Errno.ISDIR;
      Deno.removeSync(r.host);
      return Errno.SUCCESS;
    } catch (err) {
      return errnoOf(err);
    }
  }
  rename(fd: number, path: string, toFd: number, toPath: string): Errno {
    const a = this.#forWrite("path_rename", fd, path, false);
    if (typeof a === "number") return a;
    const b = this.#forWrite("path_rename", toFd, toPath, true);
    if (typeof b === "number") return b;
    return attempt(() => Deno.renameSync(a.host, b.host));
  }
  readlink(fd: number, path: string): R<{ target: string }> {
    const r = this.#stat("path_readlink", fd, false, path);
    if (typeof r === "number") return r;
    try {
      return { target: Deno.readLinkSync(r.host) };
    } catch (err) {
      const n = errnoOf(err);
      return n === Errno.IO ? Errno.INVAL : n;
    }
  }
  closeAll(): void {
    this.fds.closeAll();
  }
}
