/**
 * The `fd_*` and `path_*` functions of WASI preview 1 over an {@linkcode FdTable}.
 * Creating links (`path_link`, `path_symlink`) is refused (`ENOTCAPABLE`): a link could
 * point a later lookup outside the grant.
 *
 * @module
 */
import { Errno, FileType } from "./errno.ts";
import { errnoOf, type FdEntry, type FdTable, fileTypeOf } from "./fs.ts";
import type { Mem } from "./memory.ts";
import { allowed, visible } from "./paths.ts";

const encoder = new TextEncoder();
type Fn = (...a: never[]) => number;

function writeFilestat(m: Mem, ptr: number, st: Deno.FileInfo): void {
  m.check(ptr, 64);
  m.setU64(ptr, BigInt(st.dev ?? 0));
  m.setU64(ptr + 8, BigInt(st.ino ?? 0));
  m.setU8(ptr + 16, fileTypeOf(st));
  m.setU64(ptr + 24, BigInt(st.nlink ?? 1));
  m.setU64(ptr + 32, BigInt(st.size));
  const ns = (d: Date | null) => BigInt(d?.getTime() ?? 0) * 1_000_000n;
  m.setU64(ptr + 40, ns(st.atime));
  m.setU64(ptr + 48, ns(st.mtime));
  m.setU64(ptr + 56, ns(st.birthtime ?? st.mtime));
}

/** The file functions of one guest. */
export function fsCalls(fds: FdTable, mem: () => Mem): Record<string, Fn> {
  const file = (fd: number): FdEntry | Errno => {
    const e = fds.get(fd);
    if (!e) return Errno.BADF;
    if (e.kind !== "file") return e.kind === "dir" ? Errno.ISDIR : Errno.SPIPE;
    return e;
  };
  const path = (p: number, len: number): string => mem().string(p, len);
  /** Resolves a path for a modification (create/remove/rename) under a `rw` preopen. */
  const forWrite = (fn: string, fd: number, rel: string, mayCreate: boolean) => {
    const d = fds.dir(fd);
    if (typeof d === "number") return d;
    return fds.resolve(fn, d, rel, (p, x) => allowed(p, x, "write"), false, mayCreate);
  };
  const stat = (fn: string, fd: number, flags: number, rel: string) => {
    const d = fds.dir(fd);
    if (typeof d === "number") return d;
    return fds.resolve(fn, d, rel, (p, x) => visible(p, x), (flags & 1) !== 0);
  };

  return {
    fd_advise: (fd: number) => {
      const e = file(fd);
      return typeof e === "number" ? e : Errno.SUCCESS;
    },
    fd_allocate: (fd: number) => {
      const e = file(fd);
      return typeof e === "number" ? e : Errno.NOTSUP;
    },
    fd_close: (fd: number) => fds.close(fd),
    fd_datasync: (fd: number) => {
      const e = file(fd);
      if (typeof e === "number") return e;
      try {
        if (e.writable) e.file!.syncDataSync();
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    fd_sync: (fd: number) => {
      const e = file(fd);
      if (typeof e === "number") return e;
      try {
        if (e.writable) e.file!.syncSync();
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    fd_fdstat_get: (fd: number, ptr: number) => {
      const e = fds.get(fd);
      if (!e) return Errno.BADF;
      const m = mem();
      m.check(ptr, 24);
      m.setU8(
        ptr,
        e.kind === "stdio"
          ? FileType.CHARACTER_DEVICE
          : e.kind === "dir"
          ? FileType.DIRECTORY
          : FileType.REGULAR_FILE,
      );
      m.setU16(ptr + 2, e.append ? 1 : 0);
      m.setU64(ptr + 8, fds.rights(e));
      m.setU64(ptr + 16, e.kind === "dir" ? fds.rights(e) : 0n);
      return Errno.SUCCESS;
    },
    fd_fdstat_set_flags: (fd: number) => (fds.get(fd) ? Errno.NOTSUP : Errno.BADF),
    fd_fdstat_set_rights: (fd: number) => (fds.get(fd) ? Errno.SUCCESS : Errno.BADF),
    fd_filestat_get: (fd: number, ptr: number) => {
      const e = fds.get(fd);
      if (!e) return Errno.BADF;
      const m = mem();
      if (e.kind === "stdio") {
        m.check(ptr, 64);
        m.bytes(ptr, 64).fill(0);
        m.setU8(ptr + 16, FileType.CHARACTER_DEVICE);
        return Errno.SUCCESS;
      }
      try {
        writeFilestat(m, ptr, e.file ? e.file.statSync() : Deno.statSync(e.host));
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    fd_filestat_set_size: (fd: number, size: bigint) => {
      const e = file(fd);
      if (typeof e === "number") return e;
      if (!e.writable) return Errno.BADF;
      if (size > BigInt(fds.limits.maxFileBytes)) return Errno.FBIG;
      try {
        e.file!.truncateSync(Number(size));
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    fd_filestat_set_times: (fd: number, atim: bigint, mtim: bigint) => {
      const e = file(fd);
      if (typeof e === "number") return e;
      if (!e.writable) return Errno.BADF;
      try {
        e.file!.utimeSync(Number(atim / 1_000_000n) / 1000, Number(mtim / 1_000_000n) / 1000);
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    fd_read: (fd: number, iovs: number, n: number, nread: number) => {
      const e = fds.get(fd);
      if (!e) return Errno.BADF;
      const m = mem();
      const bufs = m.iovecs(iovs, n);
      if (e.kind === "stdio") {
        if (!e.readable) return Errno.BADF;
        m.setU32(nread, 0); // stdin is empty
        return Errno.SUCCESS;
      }
      if (e.kind === "dir") return Errno.ISDIR;
      const r = fds.readFile(e, bufs);
      if (typeof r === "number") return r;
      m.setU32(nread, r.n);
      return Errno.SUCCESS;
    },
    fd_pread: (fd: number, iovs: number, n: number, offset: bigint, nread: number) => {
      const e = file(fd);
      if (typeof e === "number") return e;
      const m = mem();
      const r = fds.readFile(e, m.iovecs(iovs, n), Number(offset));
      if (typeof r === "number") return r;
      m.setU32(nread, r.n);
      return Errno.SUCCESS;
    },
    fd_pwrite: (fd: number, iovs: number, n: number, offset: bigint, nwritten: number) => {
      const e = file(fd);
      if (typeof e === "number") return e;
      const m = mem();
      const r = fds.writeFile(e, m.iovecs(iovs, n), Number(offset));
      if (typeof r === "number") return r;
      m.setU32(nwritten, r.n);
      return Errno.SUCCESS;
    },
    fd_prestat_get: (fd: number, ptr: number) => {
      const e = fds.get(fd);
      if (!e || e.guest === undefined) return Errno.BADF;
      const m = mem();
      m.setU8(ptr, 0);
      m.setU32(ptr + 4, encoder.encode(e.guest).length);
      return Errno.SUCCESS;
    },
    fd_prestat_dir_name: (fd: number, ptr: number, len: number) => {
      const e = fds.get(fd);
      if (!e || e.guest === undefined) return Errno.BADF;
      const name = encoder.encode(e.guest);
      if (len < name.length) return Errno.NAMETOOLONG;
      mem().write(ptr, name);
      return Errno.SUCCESS;
    },
    fd_readdir: (fd: number, buf: number, len: number, cookie: bigint, used: number) => {
      const e = fds.get(fd);
      if (!e) return Errno.BADF;
      if (e.kind !== "dir" || !e.preopen) return Errno.NOTDIR;
      let names: { name: string; type: number }[];
      try {
        names = [...Deno.readDirSync(e.host)]
          .filter((d) => visible(e.preopen!, `${e.host}/${d.name}`))
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
      } catch (err) {
        return errnoOf(err);
      }
      const m = mem();
      m.check(buf, len);
      let off = 0;
      for (let i = Number(cookie); i < names.length && off < len; i++) {
        const nb = encoder.encode(names[i]!.name);
        const ent = new Uint8Array(24 + nb.length);
        const v = new DataView(ent.buffer);
        v.setBigUint64(0, BigInt(i + 1), true);
        v.setBigUint64(8, 0n, true);
        v.setUint32(16, nb.length, true);
        v.setUint8(20, names[i]!.type);
        ent.set(nb, 24);
        const take = Math.min(ent.length, len - off);
        m.write(buf + off, ent.subarray(0, take));
        off += take;
      }
      m.setU32(used, off);
      return Errno.SUCCESS;
    },
    fd_renumber: (from: number, to: number) => {
      const a = fds.get(from);
      const b = fds.get(to);
      if (!a || !b) return Errno.BADF;
      if (a.kind !== "file" && a.kind !== "dir" || a.guest !== undefined || b.guest !== undefined) {
        return Errno.NOTSUP;
      }
      if (b.kind === "stdio") return Errno.NOTSUP;
      fds.close(to);
      fds.fds.set(to, a);
      fds.fds.delete(from);
      return Errno.SUCCESS;
    },
    fd_seek: (fd: number, offset: bigint, whence: number, ptr: number) => {
      const e = file(fd);
      if (typeof e === "number") return e;
      if (whence > 2) return Errno.INVAL;
      const mode = [Deno.SeekMode.Start, Deno.SeekMode.Current, Deno.SeekMode.End][whence]!;
      try {
        const pos = e.file!.seekSync(Number(BigInt.asIntN(64, offset)), mode);
        mem().setU64(ptr, BigInt(pos));
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err) === Errno.IO ? Errno.INVAL : errnoOf(err);
      }
    },
    fd_tell: (fd: number, ptr: number) => {
      const e = file(fd);
      if (typeof e === "number") return e;
      try {
        mem().setU64(ptr, BigInt(e.file!.seekSync(0, Deno.SeekMode.Current)));
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    path_open: (
      fd: number,
      dirflags: number,
      p: number,
      len: number,
      oflags: number,
      rightsBase: bigint,
      _rightsInh: bigint,
      fdflags: number,
      fdPtr: number,
    ) => {
      const m = mem();
      m.check(fdPtr, 4);
      const r = fds.open(fd, (dirflags & 1) !== 0, path(p, len), oflags, rightsBase, fdflags);
      if (typeof r === "number") return r;
      m.setU32(fdPtr, r.fd);
      return Errno.SUCCESS;
    },
    path_filestat_get: (fd: number, flags: number, p: number, len: number, ptr: number) => {
      const r = stat("path_filestat_get", fd, flags, path(p, len));
      if (typeof r === "number") return r;
      try {
        writeFilestat(mem(), ptr, (flags & 1) ? Deno.statSync(r.host) : Deno.lstatSync(r.host));
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    path_filestat_set_times: (
      fd: number,
      flags: number,
      p: number,
      len: number,
      atim: bigint,
      mtim: bigint,
    ) => {
      const r = forWrite("path_filestat_set_times", fd, path(p, len), false);
      if (typeof r === "number") return r;
      try {
        Deno.utimeSync(r.host, Number(atim / 1_000_000n) / 1000, Number(mtim / 1_000_000n) / 1000);
        return flags >= 0 ? Errno.SUCCESS : Errno.INVAL;
      } catch (err) {
        return errnoOf(err);
      }
    },
    path_create_directory: (fd: number, p: number, len: number) => {
      const r = forWrite("path_create_directory", fd, path(p, len), true);
      if (typeof r === "number") return r;
      if (r.exists) return Errno.EXIST;
      try {
        Deno.mkdirSync(r.host);
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    path_remove_directory: (fd: number, p: number, len: number) => {
      const r = forWrite("path_remove_directory", fd, path(p, len), false);
      if (typeof r === "number") return r;
      try {
        if (!Deno.lstatSync(r.host).isDirectory) return Errno.NOTDIR;
        const d = fds.dir(fd);
        if (typeof d !== "number" && r.host === d.host) return Errno.INVAL;
        if ([...Deno.readDirSync(r.host)].length > 0) {
          return Errno.NOTEMPTY;
        }
        Deno.removeSync(r.host);
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    path_unlink_file: (fd: number, p: number, len: number) => {
      const r = forWrite("path_unlink_file", fd, path(p, len), false);
      if (typeof r === "number") return r;
      try {
        if (Deno.lstatSync(r.host).isDirectory) return Errno.ISDIR;
        Deno.removeSync(r.host);
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    path_rename: (fd: number, op: number, ol: number, nfd: number, np: number, nl: number) => {
      const a = forWrite("path_rename", fd, path(op, ol), false);
      if (typeof a === "number") return a;
      const b = forWrite("path_rename", nfd, path(np, nl), true);
      if (typeof b === "number") return b;
      try {
        Deno.renameSync(a.host, b.host);
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err);
      }
    },
    path_readlink: (
      fd: number,
      p: number,
      len: number,
      buf: number,
      blen: number,
      used: number,
    ) => {
      const r = stat("path_readlink", fd, 0, path(p, len));
      if (typeof r === "number") return r;
      try {
        const target = encoder.encode(Deno.readLinkSync(r.host));
        const m = mem();
        const n = Math.min(target.length, blen);
        m.write(buf, target.subarray(0, n));
        m.setU32(used, n);
        return Errno.SUCCESS;
      } catch (err) {
        return errnoOf(err) === Errno.IO ? Errno.INVAL : errnoOf(err);
      }
    },
    path_link: () => Errno.NOTCAPABLE,
    path_symlink: () => Errno.NOTCAPABLE,
  } as unknown as Record<string, Fn>;
}
