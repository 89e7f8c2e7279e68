/**
 * WASI file operations across processes: {@linkcode remoteFs} (in the sandbox host process)
 * sends each {@linkcode FsOps} call as one `wasi_fs` host call — a frame of a u32 header
 * length, a JSON header `{op, args}` and raw data — and {@linkcode serveFs} (in the daemon)
 * answers it on the plugin's {@linkcode LocalFs}. Malformed frames and unknown operations are
 * errnos, never exceptions.
 *
 * @module
 */
import { Errno } from "./errno.ts";
import type { FsOps } from "./fs_ops.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Host-function name of a remote file operation. */
export const WASI_FS_FN = "wasi_fs";

/** Frame: u32 header length, JSON header, raw data. */
function frame(header: unknown, data?: Uint8Array): Uint8Array {
  const h = enc.encode(JSON.stringify(header));
  const out = new Uint8Array(4 + h.length + (data?.length ?? 0));
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 4);
  if (data) out.set(data, 4 + h.length);
  return out;
}
function unframe(bytes: Uint8Array): { header: unknown; data: Uint8Array } {
  if (bytes.length < 4) throw new Error("Short wasi_fs frame");
  const n = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
  if (4 + n > bytes.length) throw new Error("Bad wasi_fs frame");
  return { header: JSON.parse(dec.decode(bytes.subarray(4, 4 + n))), data: bytes.subarray(4 + n) };
}

/** {@linkcode FsOps} that sends each operation through `call` (a synchronous host call). */
export function remoteFs(call: (input: Uint8Array) => Uint8Array): FsOps {
  const run = (op: string, args: unknown[], data?: Uint8Array): unknown => {
    // a stop raised by `call` (deadline, host-call cap) ends the guest's call
    const bytes = call(frame({ op, args }, data));
    let reply: { header: unknown; data: Uint8Array };
    try {
      reply = unframe(bytes);
    } catch {
      return Errno.IO; // e.g. a host-function error object instead of a frame
    }
    const h = reply.header as { e?: number; r?: Record<string, unknown>; error?: unknown };
    if (typeof h.e === "number") return h.e;
    if (!h.r) return Errno.IO;
    return "data" in h.r ? { ...h.r, data: reply.data } : h.r;
  };
  const ops = {} as Record<string, (...a: unknown[]) => unknown>;
  for (const op of FS_OPS) {
    ops[op] = (...a: unknown[]) =>
      op === "write" ? run(op, [a[0], null, a[2]], a[1] as Uint8Array) : run(op, a);
  }
  ops["closeAll"] = () => {};
  return ops as unknown as FsOps;
}

const FS_OPS = [
  "prestat",
  "fdstat",
  "filestat",
  "pathStat",
  "open",
  "close",
  "read",
  "write",
  "seek",
  "sync",
  "advise",
  "allocate",
  "setSize",
  "setTimes",
  "pathSetTimes",
  "readdir",
  "renumber",
  "mkdir",
  "rmdir",
  "unlink",
  "rename",
  "readlink",
] as const;

/** Answers one `wasi_fs` host call on `fs` (in the daemon). */
export function serveFs(fs: FsOps, input: Uint8Array): Uint8Array {
  let req: { op?: unknown; args?: unknown };
  let data: Uint8Array;
  try {
    const u = unframe(input);
    req = u.header as typeof req;
    data = u.data;
  } catch {
    return frame({ e: Errno.INVAL });
  }
  const op = req.op as (typeof FS_OPS)[number];
  if (!FS_OPS.includes(op) || !Array.isArray(req.args)) return frame({ e: Errno.NOSYS });
  const args = req.args.slice();
  if (op === "write") args[1] = data.slice();
  let r: unknown;
  try {
    r = (fs[op] as (...a: unknown[]) => unknown)(...args);
  } catch {
    return frame({ e: Errno.IO });
  }
  if (typeof r === "number") return frame({ e: r });
  const obj = r as Record<string, unknown>;
  if (obj["data"] instanceof Uint8Array) {
    return frame({ r: { ...obj, data: true } }, obj["data"] as Uint8Array);
  }
  return frame({ r: obj });
}
