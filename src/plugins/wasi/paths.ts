/**
 * Path rules of WASI preopens, the same as the `mr_file_read`/`mr_file_write` grant: a
 * guest path is made absolute under its directory, `..` resolved lexically and checked
 * against the preopen and the grant's globs before the file system is touched (so a path
 * outside the grant is refused the same way whether it exists or not), then symlinks are
 * followed (`realpath`; for a new file, of its directory) and the real path checked again.
 *
 * This is the WASI side's own small, synchronous check module (the runtime thread has no
 * event loop while a guest runs); it reuses the grant glob matcher of `../paths.ts`.
 *
 * @module
 */
import { basename, dirname, resolve } from "node:path";
import type { Grants } from "../../desired/spec.ts";
import { matchesAny } from "../paths.ts";

/** One directory made visible to the guest. */
export interface Preopen {
  /** Path the guest sees (absolute). */
  guestPath: string;
  /** Real host directory (symlinks resolved). */
  hostPath: string;
  /** `ro`: nothing may be created, written, renamed or removed. */
  mode: "ro" | "rw";
  /** Globs a path must match to be read; absent = everything under the preopen. */
  read?: readonly string[];
  /** Globs a path must match to be written; absent = everything under a `rw` preopen. */
  write?: readonly string[];
}

/** True when `p` is `root` or below it. */
export function within(p: string, root: string): boolean {
  return p === root || p.startsWith(root.endsWith("/") ? root : root + "/");
}

/** The literal directory prefix of a glob (segments before the first one with `*`). */
export function globDir(glob: string): string {
  const parts = resolve(glob).split("/");
  const lit: string[] = [];
  for (const part of parts.slice(0, -1)) {
    if (part.includes("*")) break;
    lit.push(part);
  }
  // a glob without wildcards names a file: its directory is the preopen
  return lit.join("/") || "/";
}

/**
 * Preopens for a `files` grant: one per distinct literal directory of its globs (that
 * exists), `rw` when a write glob names it, each filtered by the grant's globs, then `/`
 * with the same globs. The root catches every other absolute path, so a path outside the
 * grant gets `ENOTCAPABLE` from the host rather than a guest library's `ENOENT` for "no
 * preopen", and a granted directory created later is still reachable.
 */
export function preopensFromGrants(files: Grants["files"]): Preopen[] {
  const dirs = new Map<string, "ro" | "rw">();
  for (const g of files.read) if (!dirs.has(globDir(g))) dirs.set(globDir(g), "ro");
  for (const g of files.write) dirs.set(globDir(g), "rw");
  const out: Preopen[] = [];
  for (const [dir, mode] of [...dirs].sort((a, b) => a[0].localeCompare(b[0]))) {
    let hostPath: string;
    try {
      hostPath = Deno.realPathSync(dir);
      if (!Deno.statSync(hostPath).isDirectory) continue;
    } catch {
      continue; // a granted directory that does not exist is not preopened
    }
    if (hostPath === "/") continue;
    out.push({ guestPath: dir, hostPath, mode, read: files.read, write: files.write });
  }
  const mode = files.write.length > 0 ? "rw" : "ro";
  out.push({ guestPath: "/", hostPath: "/", mode, read: files.read, write: files.write });
  return out;
}

/** Why a path was refused: `outside` (not granted) or a file-system failure. */
export type Access = "read" | "write" | "dir";

/** True when `path` (absolute, resolved) may be accessed as `access` under `p`. */
export function allowed(p: Preopen, path: string, access: Access): boolean {
  if (!within(path, p.hostPath)) return false;
  if (access === "write") {
    if (p.mode !== "rw") return false;
    return p.write ? matchesAny(path, p.write) : true;
  }
  if (access === "read") {
    return p.read
      ? matchesAny(path, p.read) || (p.write ? matchesAny(path, p.write) : false)
      : true;
  }
  return true; // a directory handle only anchors lookups: what is under it is checked
}

/**
 * True when a directory entry at `path` may be shown by `fd_readdir` / stat: it is
 * readable or writable itself, or some glob reaches below it.
 */
export function visible(p: Preopen, path: string): boolean {
  if (allowed(p, path, "read") || allowed(p, path, "write")) return true;
  const globs = [...(p.read ?? []), ...(p.write ?? [])];
  if (!p.read && !p.write) return within(path, p.hostPath);
  // a child of `path` matching a glob, or `path` being a literal prefix of a glob's directory
  return matchesAny(path + "/\u0001", globs) ||
    globs.some((g) => within(globDir(g), path));
}

/** Outcome of resolving a guest path. */
export type Resolved =
  | { ok: true; host: string; lexical: string; exists: boolean }
  | { ok: false; reason: "denied" | "noent" | "inval" | "notdir" | "loop" | "io" };

/**
 * Resolves `rel` under directory `dirHost` (inside preopen `p`). `check` decides on the
 * lexical path first (before the file system is touched, so a refused path gets the same
 * answer whether it exists or not), then on the real path (symlinks followed unless
 * `follow` is false; for a missing file with `mayCreate`, its directory's real path).
 */
export function resolveIn(
  p: Preopen,
  dirHost: string,
  rel: string,
  check: (path: string) => boolean,
  follow = true,
  mayCreate = false,
): Resolved {
  if (rel.includes("\0")) return { ok: false, reason: "inval" };
  if (rel.startsWith("/")) return { ok: false, reason: "denied" };
  const lexical = resolve(dirHost, rel);
  if (!within(lexical, p.hostPath) || !check(lexical)) return { ok: false, reason: "denied" };
  let real: string;
  let exists = true;
  try {
    const st = Deno.lstatSync(lexical);
    real = st.isSymlink && !follow
      ? resolve(Deno.realPathSync(dirname(lexical)), basename(lexical))
      : Deno.realPathSync(lexical);
  } catch (err) {
    if (err instanceof Deno.errors.NotADirectory) return { ok: false, reason: "notdir" };
    if (err instanceof Deno.errors.FilesystemLoop) return { ok: false, reason: "loop" };
    if (!(err instanceof Deno.errors.NotFound)) return { ok: false, reason: "io" };
    if (!mayCreate) return { ok: false, reason: "noent" };
    try {
      real = resolve(Deno.realPathSync(dirname(lexical)), basename(lexical));
    } catch (e) {
      return { ok: false, reason: e instanceof Deno.errors.NotFound ? "noent" : "io" };
    }
    exists = false;
  }
  if (!within(real, p.hostPath) || !check(real)) return { ok: false, reason: "denied" };
  return { ok: true, host: real, lexical, exists };
}
