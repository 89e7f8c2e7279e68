/**
 * The `fd_*` and `path_*` functions of WASI preview 1: guest-memory marshalling over an
 * {@linkcode FsOps} (local, or in the daemon). Descriptors 0–2 (stdio) are answered here.
 * Creating links (`path_link`, `path_symlink`) is refused (`ENOTCAPABLE`): a link could
 * point a later lookup outside the grant.
 *
 * @module
 */
import { Errno, FileType, Rights } from "./errno.ts";
import type { FsOps, Stat } from "./fs_ops.ts";
import type { Mem } from "./memory.ts";

const encoder = new TextEncoder();
type Fn = (...a: never[]) => number;

function writeStat(m: Mem, ptr: number, st: Stat): void {
  m.check(ptr, 64);
  const ns = (ms: number) => BigInt(Math.round(ms)) * 1_000_000n;
  m.setU64(ptr, BigInt(st.dev));
  m.setU64(ptr + 8, BigInt(st.ino));
  m.setU8(ptr + 16, st.type);
  m.setU64(ptr + 24, BigInt(st.nlink));
  m.setU64(ptr + 32, BigInt(st.size));
  m.setU64(ptr + 40, ns(st.atimeMs));
  m.setU64(ptr + 48, ns(st.mtimeMs));
  m.setU64(ptr + 56, ns(st.ctimeMs));
}

const isStdio = (fd: number) => fd >= 0 && fd <= 2;
const msOf = (ns: bigint) => Number(ns / 1_000_000n);

/** The file functions of one guest (stdio writes are the caller's `fd_write`). */
export function fsCalls(fs: FsOps, mem: () => Mem): Record<string, Fn> {
  const path = (p: number, len: number): string => mem().string(p, len);
  const done = (r: Errno | object, then?: () => void): number => {
    if (typeof r === "number") return r;
    then?.();
    return Errno.SUCCESS;
  };
  const readInto = (r: Errno | { data: Uint8Array }, bufs: Uint8Array[], m: Mem, out: number) =>
    done(r, () => {
      const data = (r as { data: Uint8Array }).data;
      let off = 0;
      for (const b of bufs) {
        const n = Math.min(b.length, data.length - off);
        b.set(data.subarray(off, off + n));
        off += n;
      }
      m.setU32(out, off);
    });
  const total = (bufs: Uint8Array[]) => bufs.reduce((n, b) => n + b.length, 0);
  const join = (bufs: Uint8Array[]) => {
    const out = new Uint8Array(total(bufs));
    let off = 0;
    for (const b of bufs) {
      out.set(b, off);
      off += b.length;
    }
    return out;
  };

  return {
    fd_advise: (fd: number) => isStdio(fd) ? Errno.SPIPE : fs.advise(fd),
    fd_allocate: (fd: number) => isStdio(fd) ? Errno.SPIPE : fs.allocate(fd),
    fd_close: (fd: number) => isStdio(fd) ? Errno.NOTSUP : fs.close(fd),
    fd_datasync: (fd: number) => isStdio(fd) ? Errno.SUCCESS : fs.sync(fd, true),
    fd_sync: (fd: number) => isStdio(fd) ? Errno.SUCCESS : fs.sync(fd, false),
    fd_fdstat_get: (fd: number, ptr: number) => {
      const m = mem();
      m.check(ptr, 24);
      if (isStdio(fd)) {
        m.setU8(ptr, FileType.CHARACTER_DEVICE);
        m.setU16(ptr + 2, 0);
        m.setU64(ptr + 8, fd === 0 ? Rights.FD_READ : Rights.FD_WRITE);
        m.setU64(ptr + 16, 0n);
        return Errno.SUCCESS;
      }
      const r = fs.fdstat(fd);
      return done(r, () => {
        const s = r as Exclude<typeof r, number>;
        m.setU8(ptr, s.type);
        m.setU16(ptr + 2, s.flags);
        m.setU64(ptr + 8, BigInt(s.base));
        m.setU64(ptr + 16, BigInt(s.inheriting));
      });
    },
    fd_fdstat_set_flags: (fd: number) =>
      isStdio(fd) ? Errno.NOTSUP : (typeof fs.fdstat(fd) === "number" ? Errno.BADF : Errno.NOTSUP),
    fd_fdstat_set_rights: (fd: number) =>
      isStdio(fd) || typeof fs.fdstat(fd) !== "number" ? Errno.SUCCESS : Errno.BADF,
    fd_filestat_get: (fd: number, ptr: number) => {
      const m = mem();
      if (isStdio(fd)) {
        m.check(ptr, 64);
        m.bytes(ptr, 64).fill(0);
        m.setU8(ptr + 16, FileType.CHARACTER_DEVICE);
        return Errno.SUCCESS;
      }
      const r = fs.filestat(fd);
      return done(r, () => writeStat(m, ptr, r as Stat));
    },
    fd_filestat_set_size: (fd: number, size: bigint) =>
      isStdio(fd) ? Errno.SPIPE : fs.setSize(fd, Number(size)),
    fd_filestat_set_times: (fd: number, atim: bigint, mtim: bigint) =>
      isStdio(fd) ? Errno.SPIPE : fs.setTimes(fd, msOf(atim), msOf(mtim)),
    fd_read: (fd: number, iovs: number, n: number, nread: number) => {
      const m = mem();
      const bufs = m.iovecs(iovs, n);
      m.check(nread, 4);
      if (fd === 0) {
        m.setU32(nread, 0); // stdin is empty
        return Errno.SUCCESS;
      }
      if (isStdio(fd)) return Errno.BADF;
      return readInto(fs.read(fd, total(bufs), null), bufs, m, nread);
    },
    fd_pread: (fd: number, iovs: number, n: number, offset: bigint, nread: number) => {
      if (isStdio(fd)) return Errno.SPIPE;
      const m = mem();
      const bufs = m.iovecs(iovs, n);
      m.check(nread, 4);
      return readInto(fs.read(fd, total(bufs), Number(offset)), bufs, m, nread);
    },
    fd_pwrite: (fd: number, iovs: number, n: number, offset: bigint, nwritten: number) => {
      if (isStdio(fd)) return Errno.SPIPE;
      const m = mem();
      const bufs = m.iovecs(iovs, n);
      m.check(nwritten, 4);
      const r = fs.write(fd, join(bufs), Number(offset));
      return done(r, () => m.setU32(nwritten, (r as { n: number }).n));
    },
    fd_prestat_get: (fd: number, ptr: number) => {
      if (isStdio(fd)) return Errno.BADF;
      const m = mem();
      m.check(ptr, 8);
      const r = fs.prestat(fd);
      return done(r, () => {
        m.setU8(ptr, 0);
        m.setU32(ptr + 4, encoder.encode((r as { name: string }).name).length);
      });
    },
    fd_prestat_dir_name: (fd: number, ptr: number, len: number) => {
      if (isStdio(fd)) return Errno.BADF;
      const r = fs.prestat(fd);
      if (typeof r === "number") return r;
      const name = encoder.encode(r.name);
      if (len < name.length) return Errno.NAMETOOLONG;
      mem().write(ptr, name);
      return Errno.SUCCESS;
    },
    fd_readdir: (fd: number, buf: number, len: number, cookie: bigint, used: number) => {
      if (isStdio(fd)) return Errno.NOTDIR;
      const m = mem();
      m.check(buf, len);
      m.check(used, 4);
      let off = 0;
      let next = Number(cookie);
      while (off < len) {
        const r = fs.readdir(fd, next);
        if (typeof r === "number") return r;
        if (r.entries.length === 0) break;
        for (const e of r.entries) {
          next++;
          const nb = encoder.encode(e.name);
          const ent = new Uint8Array(24 + nb.length);
          const v = new DataView(ent.buffer);
          v.setBigUint64(0, BigInt(next), true);
          v.setUint32(16, nb.length, true);
          v.setUint8(20, e.type);
          ent.set(nb, 24);
          const take = Math.min(ent.length, len - off);
          m.write(buf + off, ent.subarray(0, take));
          off += take;
          if (off >= len) break;
        }
      }
      m.setU32(used, off);
      return Errno.SUCCESS;
    },
    fd_renumber: (from: number, to: number) =>
      isStdio(from) || isStdio(to) ? Errno.NOTSUP : fs.renumber(from, to),
    fd_seek: (fd: number, offset: bigint, whence: number, ptr: number) => {
      if (isStdio(fd)) return Errno.SPIPE;
      const m = mem();
      m.check(ptr, 8);
      const r = fs.seek(fd, Number(BigInt.asIntN(64, offset)), whence);
      return done(r, () => m.setU64(ptr, BigInt((r as { pos: number }).pos)));
    },
    fd_tell: (fd: number, ptr: number) => {
      if (isStdio(fd)) return Errno.SPIPE;
      const m = mem();
      m.check(ptr, 8);
      const r = fs.seek(fd, 0, 1);
      return done(r, () => m.setU64(ptr, BigInt((r as { pos: number }).pos)));
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
      if (isStdio(fd)) return Errno.NOTDIR;
      const r = fs.open(
        fd,
        (dirflags & 1) !== 0,
        path(p, len),
        oflags,
        String(rightsBase),
        fdflags,
      );
      return done(r, () => m.setU32(fdPtr, (r as { fd: number }).fd));
    },
    path_filestat_get: (fd: number, flags: number, p: number, len: number, ptr: number) => {
      if (isStdio(fd)) return Errno.NOTDIR;
      const m = mem();
      m.check(ptr, 64);
      const r = fs.pathStat(fd, (flags & 1) !== 0, path(p, len));
      return done(r, () => writeStat(m, ptr, r as Stat));
    },
    path_filestat_set_times: (
      fd: number,
      _flags: number,
      p: number,
      len: number,
      atim: bigint,
      mtim: bigint,
    ) => isStdio(fd) ? Errno.NOTDIR : fs.pathSetTimes(fd, path(p, len), msOf(atim), msOf(mtim)),
    path_create_directory: (fd: number, p: number, len: number) =>
      isStdio(fd) ? Errno.NOTDIR : fs.mkdir(fd, path(p, len)),
    path_remove_directory: (fd: number, p: number, len: number) =>
      isStdio(fd) ? Errno.NOTDIR : fs.rmdir(fd, path(p, len)),
    path_unlink_file: (fd: number, p: number, len: number) =>
      isStdio(fd) ? Errno.NOTDIR : fs.unlink(fd, path(p, len)),
    path_rename: (fd: number, op: number, ol: number, nfd: number, np: number, nl: number) =>
      isStdio(fd) || isStdio(nfd) ? Errno.NOTDIR : fs.rename(fd, path(op, ol), nfd, path(np, nl)),
    path_readlink: (
      fd: number,
      p: number,
      len: number,
      buf: number,
      blen: number,
      used: number,
    ) => {
      if (isStdio(fd)) return Errno.NOTDIR;
      const m = mem();
      m.check(buf, blen);
      m.check(used, 4);
      const r = fs.readlink(fd, path(p, len));
      return done(r, () => {
        const t = encoder.encode((r as { target: string }).target);
        const n = Math.min(t.length, blen);
        m.write(buf, t.subarray(0, n));
        m.setU32(used, n);
      });
    },
    path_link: () => Errno.NOTCAPABLE,
    path_symlink: () => Errno.NOTCAPABLE,
  } as unknown as Record<string, Fn>;
}
