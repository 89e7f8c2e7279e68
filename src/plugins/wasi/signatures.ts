/**
 * The signatures of the WASI preview 1 functions (`i` = i32, `I` = i64, `params>results`) and
 * a small reader of a module's import signatures, so that a module importing a WASI function
 * with another signature is refused at load instead of failing at the JS boundary.
 *
 * @module
 */
import { Reader } from "../instrument/bytes.ts";
import { readSections } from "../instrument/sections.ts";

/** Preview 1 signature of each function. */
export const WASI_SIGNATURES: Readonly<Record<string, string>> = {
  args_get: "ii>i",
  args_sizes_get: "ii>i",
  environ_get: "ii>i",
  environ_sizes_get: "ii>i",
  clock_res_get: "ii>i",
  clock_time_get: "iIi>i",
  fd_advise: "iIIi>i",
  fd_allocate: "iII>i",
  fd_close: "i>i",
  fd_datasync: "i>i",
  fd_fdstat_get: "ii>i",
  fd_fdstat_set_flags: "ii>i",
  fd_fdstat_set_rights: "iII>i",
  fd_filestat_get: "ii>i",
  fd_filestat_set_size: "iI>i",
  fd_filestat_set_times: "iIIi>i",
  fd_pread: "iiiIi>i",
  fd_prestat_get: "ii>i",
  fd_prestat_dir_name: "iii>i",
  fd_pwrite: "iiiIi>i",
  fd_read: "iiii>i",
  fd_readdir: "iiiIi>i",
  fd_renumber: "ii>i",
  fd_seek: "iIii>i",
  fd_sync: "i>i",
  fd_tell: "ii>i",
  fd_write: "iiii>i",
  path_create_directory: "iii>i",
  path_filestat_get: "iiiii>i",
  path_filestat_set_times: "iiiiIIi>i",
  path_link: "iiiiiii>i",
  path_open: "iiiiiIIii>i",
  path_readlink: "iiiiii>i",
  path_remove_directory: "iii>i",
  path_rename: "iiiiii>i",
  path_symlink: "iiiii>i",
  path_unlink_file: "iii>i",
  poll_oneoff: "iiii>i",
  proc_exit: "i>",
  proc_raise: "i>i",
  sched_yield: ">i",
  random_get: "ii>i",
  sock_accept: "iii>i",
  sock_recv: "iiiiii>i",
  sock_send: "iiiii>i",
  sock_shutdown: "ii>i",
};

const VAL: Record<number, string> = { 0x7f: "i", 0x7e: "I", 0x7d: "f", 0x7c: "F", 0x7b: "v" };

/**
 * Signatures of the imported functions of `wasm` from import module `module`, by name.
 * Throws when the type or import section cannot be read (the module is then invalid).
 */
export function importSignatures(wasm: Uint8Array, module: string): Map<string, string> {
  const sections = readSections(wasm);
  const types: string[] = [];
  const ts = sections.get(1);
  if (ts) {
    const r = new Reader(wasm, ts.start, ts.end);
    for (let n = r.u32(); n > 0; n--) {
      if (r.byte() !== 0x60) return new Map(); // not a plain function type: V8 decides
      const vec = () => {
        let s = "";
        for (let k = r.u32(); k > 0; k--) s += VAL[r.byte()] ?? "?";
        return s;
      };
      const params = vec();
      types.push(`${params}>${vec()}`);
    }
  }
  const out = new Map<string, string>();
  const is = sections.get(2);
  if (!is) return out;
  const r = new Reader(wasm, is.start, is.end);
  for (let n = r.u32(); n > 0; n--) {
    const mod = r.name();
    const name = r.name();
    const kind = r.byte();
    const limits = () => {
      const flags = r.byte();
      r.u32();
      if (flags & 1) r.u32();
    };
    if (kind === 0) {
      const t = r.u32();
      if (mod === module) out.set(name, types[t] ?? "?");
    } else if (kind === 1) {
      r.byte(); // reference type
      limits();
    } else if (kind === 2) {
      limits();
    } else if (kind === 3) {
      r.byte(); // value type
      r.byte(); // mutability
    } else return out; // unknown kind: V8 decides
  }
  return out;
}
