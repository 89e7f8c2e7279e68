/**
 * Helpers of the WASI file side: errno of a Deno or Node error, file type of a stat, and the
 * real path of an open descriptor.
 *
 * @module
 */
import nodeFs from "node:fs";
import { Errno, FileType } from "./errno.ts";

/**
 * The real path of an open descriptor (`/proc/self/fd/N`; else the name's real path when
 * it is still the same file), as the `mr_file_*` hardening checks it: what was opened, not
 * what the name pointed at before the open.
 */
export function fdRealPath(fd: number, name: string): string | null {
  try {
    return nodeFs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    try {
      const real = nodeFs.realpathSync(name);
      const a = nodeFs.statSync(real);
      const b = nodeFs.fstatSync(fd);
      return a.ino === b.ino && a.dev === b.dev ? real : null;
    } catch {
      return null;
    }
  }
}

/** Maps a Deno error to an errno. */
export function errnoOf(err: unknown): Errno {
  if (err instanceof Deno.errors.NotFound) return Errno.NOENT;
  if (err instanceof Deno.errors.AlreadyExists) return Errno.EXIST;
  if (err instanceof Deno.errors.PermissionDenied) return Errno.ACCES;
  if (err instanceof Deno.errors.IsADirectory) return Errno.ISDIR;
  if (err instanceof Deno.errors.NotADirectory) return Errno.NOTDIR;
  if (err instanceof Deno.errors.FilesystemLoop) return Errno.LOOP;
  if (err instanceof Deno.errors.InvalidData) return Errno.INVAL;
  const code = (err as { code?: string }).code;
  const byCode: Record<string, Errno> = {
    ENOENT: Errno.NOENT,
    EEXIST: Errno.EXIST,
    EACCES: Errno.ACCES,
    EPERM: Errno.PERM,
    EISDIR: Errno.ISDIR,
    ENOTDIR: Errno.NOTDIR,
    ELOOP: Errno.LOOP,
    ENOTEMPTY: Errno.NOTEMPTY,
    EFBIG: Errno.FBIG,
    EINVAL: Errno.INVAL,
    EBADF: Errno.BADF,
  };
  return (code ? byCode[code] : undefined) ?? Errno.IO;
}

/** File type of a Deno stat. */
export function fileTypeOf(st: Deno.FileInfo): number {
  if (st.isFile) return FileType.REGULAR_FILE;
  if (st.isDirectory) return FileType.DIRECTORY;
  if (st.isSymlink) return FileType.SYMBOLIC_LINK;
  return FileType.UNKNOWN;
}
