/**
 * Path grants: make a path absolute, resolve `..` and symlinks (for a file that does
 * not exist yet, of its directory), then match globs (`*` = one segment, `**` = any depth).
 *
 * @module
 */
import { basename, dirname, resolve } from "node:path";

/** Compiles a grant glob to a RegExp over absolute, normalised paths. */
export function globToRegExp(glob: string): RegExp {
  const norm = resolve(glob);
  let re = "^";
  const parts = norm.split("/");
  parts.forEach((part, i) => {
    if (i > 0) re += "/";
    if (part === "**") {
      // any depth, including none: swallow the following separator too
      re = re.slice(0, -1) + "(?:/.*)?";
      return;
    }
    re += part.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*");
  });
  return new RegExp(re + "$");
}

/** True when the absolute, resolved `path` matches one of `globs`. */
export function matchesAny(path: string, globs: readonly string[]): boolean {
  return globs.some((g) => globToRegExp(g).test(path));
}

/**
 * The real absolute path of `path` (symlinks followed). For a missing file, the real path
 * of its (existing) directory joined with its name.
 */
export async function realPathFor(path: string, mayNotExist: boolean): Promise<string> {
  const abs = resolve(path);
  try {
    return await Deno.realPath(abs);
  } catch (err) {
    if (!mayNotExist || !(err instanceof Deno.errors.NotFound)) throw err;
    const dir = await Deno.realPath(dirname(abs));
    return resolve(dir, basename(abs));
  }
}
