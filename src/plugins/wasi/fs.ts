/**
 * The WASI file descriptor table, on synchronous file APIs (the guest blocks while a WASI
 * function runs; in the sandbox this table lives in the daemon, behind `wasi_fs` host
 * calls). Every path goes through `paths.ts`, every open through the `mr_file_*` hardening
 * (no final symlink, no FIFO hang, the descriptor's real path checked); every failure is an
 * errno, never an exception.
 *
 * @module
 */
import nodeFs from "node:fs";
import { Errno, FdFlags, OFlags, Rights, WRITE_RIGHTS } from "./errno.ts";
import { allowed, type Preopen, type Resolved, resolveIn, visible, within } from "./paths.ts";
import { errnoOf, fdRealPath } from "./fs_util.ts";

export { errnoOf, fdRealPath, fileTypeOf } from "./fs_util.ts";

const C = nodeFs.constants;

/** One open descriptor. */
export interface FdEntry {
  kind: "stdio" | "dir" | "file";
  preopen: Preopen | null;
  /** Real host path (dirs and files). */
  host: string;
  /** Guest path of a preopened directory. */
  guest?: string;
  /** OS descriptor of an open file. */
  fd?: number;
  /** File position (reads and writes are positional: `pread`/`pwrite`). */
  pos: number;
  readable: boolean;
  writable: boolean;
  append: boolean;
}

/** Limits of the file side. */
export interface FsLimits {
  /** Largest file the guest may open for reading or grow by writing. */
  maxFileBytes: number;
  /** Most descriptors open at once (stdio and preopens included). */
  maxOpenFds: number;
}

/** Called for each refusal of a path outside the grant (audit). */
export type DenyHook = (fn: string, detail: Record<string, unknown>) => void;

function reasonErrno(r: Exclude<Resolved, { ok: true }>): Errno {
  switch (r.reason) {
    case "denied":
      return Errno.NOTCAPABLE;
    case "noent":
      return Errno.NOENT;
    case "inval":
      return Errno.INVAL;
    case "notdir":
      return Errno.NOTDIR;
    case "loop":
      return Errno.LOOP;
    default:
      return Errno.IO;
  }
}

/** The descriptor table of one guest. */
export class FdTable {
  readonly fds = new Map<number, FdEntry>();
  constructor(
    readonly preopens: readonly Preopen[],
    readonly limits: FsLimits,
    readonly onDeny: DenyHook,
  ) {
    for (let i = 0; i < 3; i++) {
      this.fds.set(i, {
        kind: "stdio",
        preopen: null,
        host: "",
        readable: i === 0,
        writable: i > 0,
        append: false,
        pos: 0,
      });
    }
    preopens.forEach((p, i) =>
      this.fds.set(3 + i, {
        kind: "dir",
        preopen: p,
        host: p.hostPath,
        guest: p.guestPath,
        readable: true,
        writable: p.mode === "rw",
        append: false,
        pos: 0,
      })
    );
  }

  get(fd: number): FdEntry | undefined {
    return this.fds.get(fd);
  }

  /** The directory entry `fd`, or the errno to return. */
  dir(fd: number): FdEntry | Errno {
    const e = this.fds.get(fd);
    if (!e) return Errno.BADF;
    if (e.kind !== "dir" || !e.preopen) return Errno.NOTDIR;
    return e;
  }

  #add(entry: FdEntry): { fd: number } | Errno {
    if (this.fds.size >= this.limits.maxOpenFds) return Errno.MFILE;
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    this.fds.set(fd, entry);
    return { fd };
  }

  /** Resolves `rel` under directory `fd` with `check`, auditing refusals. */
  resolve(
    fn: string,
    d: FdEntry,
    rel: string,
    check: (p: Preopen, path: string) => boolean,
    follow = true,
    mayCreate = false,
  ): Extract<Resolved, { ok: true }> | Errno {
    const p = d.preopen!;
    const r = resolveIn(p, d.host, rel, (path) => check(p, path), follow, mayCreate);
    if (!r.ok) {
      if (r.reason === "denied") this.onDeny(fn, { path: rel, dir: d.host });
      return reasonErrno(r);
    }
    return r;
  }

  /** `path_open`: a new descriptor or an errno. */
  open(
    dirFd: number,
    follow: boolean,
    rel: string,
    oflags: number,
    rightsBase: bigint,
    fdflags: number,
  ): { fd: number } | Errno {
    const d = this.dir(dirFd);
    if (typeof d === "number") return d;
    const wantDir = (oflags & OFlags.DIRECTORY) !== 0;
    const create = (oflags & OFlags.CREAT) !== 0;
    const write = !wantDir && (create || (oflags & OFlags.TRUNC) !== 0 ||
      (fdflags & FdFlags.APPEND) !== 0 || (rightsBase & Rights.FD_WRITE) !== 0n);
    const read = !wantDir && (rightsBase & Rights.FD_READ) !== 0n;
    const r = this.resolve(
      "path_open",
      d,
      rel,
      (p, path) =>
        (wantDir
          ? visible(p, path)
          : (write ? allowed(p, path, "write") : allowed(p, path, "read")) || visible(p, path)) &&
        (!read || !write || allowed(p, path, "read")),
      follow,
      create,
    );
    if (typeof r === "number") return r;
    let st: Deno.FileInfo | null = null;
    if (r.exists) {
      try {
        st = Deno.statSync(r.host);
      } catch (err) {
        return errnoOf(err);
      }
      if (create && (oflags & OFlags.EXCL) !== 0) return Errno.EXIST;
    }
    const p = d.preopen!;
    if (st?.isDirectory) {
      if (write) return Errno.ISDIR;
      if (!visible(p, r.host)) return this.#denied("path_open", rel);
      return this.#add({
        kind: "dir",
        preopen: p,
        host: r.host,
        readable: true,
        writable: p.mode === "rw",
        append: false,
        pos: 0,
      });
    }
    if (wantDir) return st ? Errno.NOTDIR : Errno.NOENT;
    if (st && !st.isFile) return this.#denied("path_open", rel); // devices, FIFOs, sockets
    const mayWrite = allowed(p, r.host, "write") && allowed(p, r.lexical, "write");
    const mayRead = allowed(p, r.host, "read") && allowed(p, r.lexical, "read");
    if ((write && !mayWrite) || (!write && !mayRead)) return this.#denied("path_open", rel);
    // as mr_file_*: no symlink as the last component, no FIFO hang, and the opened
    // descriptor's real path checked against the grant (no check-then-open gap)
    try {
      if (Deno.lstatSync(r.lexical).isSymlink) return this.#denied("path_open", rel);
    } catch { /* a new file */ }
    const append = (fdflags & FdFlags.APPEND) !== 0;
    let fd: number;
    try {
      fd = nodeFs.openSync(
        r.host,
        (write ? (mayRead ? C.O_RDWR : C.O_WRONLY) : C.O_RDONLY) | C.O_NOFOLLOW | C.O_NONBLOCK |
          (create ? C.O_CREAT : 0) | ((oflags & OFlags.EXCL) !== 0 ? C.O_EXCL : 0) |
          ((oflags & OFlags.TRUNC) !== 0 ? C.O_TRUNC : 0) | (append ? C.O_APPEND : 0),
        0o644,
      );
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "ELOOP") return this.#denied("path_open", rel);
      return code === "EEXIST" ? Errno.EXIST : code === "ENOENT" ? Errno.NOENT : errnoOf(err);
    }
    const refuse = (e: Errno): Errno => {
      nodeFs.closeSync(fd);
      return e === Errno.NOTCAPABLE ? this.#denied("path_open", rel) : e;
    };
    let size: number;
    try {
      const real = fdRealPath(fd, r.host);
      if (real === null || !within(real, p.hostPath)) return refuse(Errno.NOTCAPABLE);
      if (write ? !allowed(p, real, "write") : !allowed(p, real, "read")) {
        return refuse(Errno.NOTCAPABLE);
      }
      const fst = nodeFs.fstatSync(fd);
      if (!fst.isFile()) return refuse(Errno.NOTCAPABLE); // devices, FIFOs, sockets
      size = fst.size;
    } catch (err) {
      return refuse(errnoOf(err));
    }
    if (!write && size > this.limits.maxFileBytes) return refuse(Errno.FBIG);
    const added = this.#add({
      kind: "file",
      preopen: p,
      host: r.host,
      fd,
      pos: 0,
      readable: mayRead || !write,
      writable: write,
      append,
    });
    if (typeof added === "number") nodeFs.closeSync(fd);
    return added;
  }

  #denied(fn: string, rel: string): Errno {
    this.onDeny(fn, { path: rel });
    return Errno.NOTCAPABLE;
  }

  close(fd: number): Errno {
    const e = this.fds.get(fd);
    if (!e) return Errno.BADF;
    if (e.kind === "stdio" || (e.kind === "dir" && e.guest !== undefined)) {
      return Errno.NOTSUP; // stdio and preopens stay
    }
    this.fds.delete(fd);
    try {
      if (e.fd !== undefined) nodeFs.closeSync(e.fd);
    } catch { /* already closed */ }
    return Errno.SUCCESS;
  }

  /** Writes `bufs` to file `e` (at `at`, else its position or end), under the size cap. */
  writeFile(e: FdEntry, bufs: Uint8Array[], at?: number): { n: number } | Errno {
    if (e.fd === undefined || !e.writable) return Errno.BADF;
    try {
      const size = nodeFs.fstatSync(e.fd).size;
      let pos = at ?? (e.append ? size : e.pos);
      const total = bufs.reduce((n, b) => n + b.length, 0);
      if (Math.max(size, pos + total) > this.limits.maxFileBytes) return Errno.FBIG;
      for (const b of bufs) {
        let off = 0;
        // O_APPEND writes at the end whatever the position says
        while (off < b.length) off += nodeFs.writeSync(e.fd, b, off, b.length - off, pos + off);
        pos += b.length;
      }
      if (at === undefined) e.pos = pos;
      return { n: total };
    } catch (err) {
      return errnoOf(err);
    }
  }

  /** Reads into `bufs` from file `e` (at `at`, else its position). */
  readFile(e: FdEntry, bufs: Uint8Array[], at?: number): { n: number } | Errno {
    if (e.fd === undefined || !e.readable) return Errno.BADF;
    try {
      let pos = at ?? e.pos;
      let n = 0;
      for (const b of bufs) {
        let off = 0;
        while (off < b.length) {
          const got = nodeFs.readSync(e.fd, b, off, b.length - off, pos);
          if (got === 0) break;
          off += got;
          pos += got;
        }
        n += off;
        if (off < b.length) break;
      }
      if (at === undefined) e.pos = pos;
      return { n };
    } catch (err) {
      return errnoOf(err);
    }
  }

  /** Rights a descriptor reports (`fd_fdstat_get`). */
  rights(e: FdEntry): bigint {
    if (e.kind === "stdio") return e.readable ? Rights.FD_READ : Rights.FD_WRITE;
    return e.writable ? Rights.ALL : Rights.ALL & ~WRITE_RIGHTS;
  }

  closeAll(): void {
    for (const e of this.fds.values()) {
      try {
        if (e.fd !== undefined) nodeFs.closeSync(e.fd);
      } catch { /* closed */ }
    }
    this.fds.clear();
  }
}
