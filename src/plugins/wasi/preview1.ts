/**
 * WASI preview 1 (`wasi_snapshot_preview1`), deny by default, built for one guest from
 * what its grant allows: args (the agent name), environment (only `config.env`), clocks,
 * random, stdout/stderr as rate-limited log lines, `poll_oneoff` sleeping on clocks within
 * the call's deadline, `proc_exit`, and the files of its preopens (`fs_calls.ts`).
 * Sockets and anything else return `ENOSYS`; a bad pointer returns `EFAULT`; nothing
 * traps except `proc_exit` and a sleep past the deadline, which end the call.
 *
 * @module
 */
import { ClockId, Errno } from "./errno.ts";
import type { DenyHook, FsLimits } from "./fs.ts";
import { fsCalls } from "./fs_calls.ts";
import { type FsOps, LocalFs } from "./fs_ops.ts";
import { Fault, Mem } from "./memory.ts";
import { Lines } from "./lines.ts";
import { WASI_FUNCTIONS } from "./names.ts";
import type { Preopen } from "./paths.ts";

/** `proc_exit(code)`: ends the call; the runtime reports `code`. */
export class WasiExit extends Error {
  override name = "WasiExit";
  constructor(readonly code: number) {
    super(`Guest called proc_exit(${code})`);
  }
}

/** A `poll_oneoff` sleep reached the call's deadline. */
export class WasiDeadline extends Error {
  override name = "WasiDeadline";
}

/** Limits of the WASI layer. */
export interface WasiLimits extends FsLimits {
  /** Longest stdout/stderr line; longer ones are split. */
  maxLineBytes: number;
  /** Lines per second (both streams) before lines are dropped. */
  linesPerSecond: number;
  /** Lines that may come at once before the rate applies. */
  lineBurst: number;
}

/** Defaults: 1 MiB files (the `mr_file_read` cap), 64 descriptors, 4 KiB lines, 100/s. */
export const DEFAULT_WASI_LIMITS: WasiLimits = {
  maxFileBytes: 1024 * 1024,
  maxOpenFds: 64,
  maxLineBytes: 4096,
  linesPerSecond: 100,
  lineBurst: 200,
};

/** What a guest's WASI is built from. */
export interface WasiOptions {
  /** The guest's exported memory (known after instantiation). */
  memory: () => WebAssembly.Memory | undefined;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  /** Directories opened here with synchronous Deno file APIs (ignored when `fs` is given). */
  preopens?: readonly Preopen[];
  /** File operations done elsewhere (the daemon), e.g. {@linkcode remoteFs}. */
  fs?: FsOps;
  /** Complete stdout lines (without the newline). */
  stdout: (line: string) => void;
  /** Complete stderr lines, and the host's notes about dropped lines. */
  stderr: (line: string) => void;
  /** Epoch ms deadline of the current call. */
  deadline: () => number;
  clock?: { realtimeNs(): bigint; monotonicNs(): bigint };
  random?: (buf: Uint8Array) => void;
  /** Blocks the thread for `ms` (the runtime thread has nothing else to do meanwhile). */
  sleep?: (ms: number) => void;
  limits?: Partial<WasiLimits>;
  onDeny?: DenyHook;
}

export { WASI_FUNCTIONS, WASI_MODULE } from "./names.ts";

const encoder = new TextEncoder();
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

const defaultClock = {
  realtimeNs: () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)),
  monotonicNs: () => BigInt(Math.round(performance.now() * 1e6)),
};

/** A guest's WASI: its import object, and the hooks the runtime calls around calls. */
export interface Wasi {
  imports: Record<string, (...args: never[]) => number | void>;
  /** Emits partial lines still buffered (end of a call). */
  flush(): void;
  /** Closes every file the guest opened. */
  close(): void;
  readonly fs: FsOps;
}

/** Builds the `wasi_snapshot_preview1` import object for one guest. */
export function createWasi(opts: WasiOptions): Wasi {
  const limits = { ...DEFAULT_WASI_LIMITS, ...opts.limits };
  const clock = opts.clock ?? defaultClock;
  const random = opts.random ?? ((b: Uint8Array) => crypto.getRandomValues(b));
  const sleep = opts.sleep ?? ((ms: number) => void Atomics.wait(sleepCell, 0, 0, ms));
  const fs = opts.fs ?? new LocalFs(opts.preopens ?? [], limits, opts.onDeny ?? (() => {}));
  const mem = (): Mem => {
    const m = opts.memory();
    if (!m) throw new Fault("Module exports no memory");
    return new Mem(m);
  };
  // token bucket for log lines
  let tokens = limits.lineBurst;
  let last = Number(clock.monotonicNs() / 1_000_000n);
  let dropped = 0;
  const gate = (): boolean => {
    const now = Number(clock.monotonicNs() / 1_000_000n);
    tokens = Math.min(limits.lineBurst, tokens + ((now - last) * limits.linesPerSecond) / 1000);
    last = now;
    if (tokens >= 1) {
      tokens -= 1;
      if (dropped > 0) {
        const n = dropped;
        dropped = 0;
        opts.stderr(`[${n} lines of stdout/stderr dropped by the rate limit]`);
      }
      return true;
    }
    dropped++;
    return false;
  };
  const out = new Lines(opts.stdout, gate, limits.maxLineBytes);
  const err = new Lines(opts.stderr, gate, limits.maxLineBytes);
  const args = opts.args.map((a) => encoder.encode(a + "\0"));
  const env = Object.entries(opts.env).map(([k, v]) => encoder.encode(`${k}=${v}\0`));

  const listGet = (list: Uint8Array[]) => (ptrs: number, buf: number): number => {
    const m = mem();
    let off = buf;
    list.forEach((a, i) => {
      m.setU32(ptrs + i * 4, off);
      m.write(off, a);
      off += a.length;
    });
    return Errno.SUCCESS;
  };
  const listSizes = (list: Uint8Array[]) => (countPtr: number, sizePtr: number): number => {
    const m = mem();
    m.setU32(countPtr, list.length);
    m.setU32(sizePtr, list.reduce((n, a) => n + a.length, 0));
    return Errno.SUCCESS;
  };
  const nowNs = (id: number): bigint | null => {
    if (id === ClockId.REALTIME) return clock.realtimeNs();
    if (
      id === ClockId.MONOTONIC || id === ClockId.PROCESS_CPUTIME || id === ClockId.THREAD_CPUTIME
    ) {
      return clock.monotonicNs();
    }
    return null;
  };

  const core: Record<string, (...a: never[]) => number | void> = {
    args_get: listGet(args),
    args_sizes_get: listSizes(args),
    environ_get: listGet(env),
    environ_sizes_get: listSizes(env),
    clock_res_get: (id: number, ptr: number) => {
      if (nowNs(id) === null) return Errno.INVAL;
      mem().setU64(ptr, 1000n);
      return Errno.SUCCESS;
    },
    clock_time_get: (id: number, _precision: bigint, ptr: number) => {
      const t = nowNs(id);
      if (t === null) return Errno.INVAL;
      mem().setU64(ptr, t);
      return Errno.SUCCESS;
    },
    random_get: (ptr: number, len: number) => {
      const b = mem().bytes(ptr, len);
      for (let off = 0; off < b.length; off += 65536) random(b.subarray(off, off + 65536));
      return Errno.SUCCESS;
    },
    sched_yield: () => Errno.SUCCESS,
    proc_exit: (code: number) => {
      out.flush();
      err.flush();
      throw new WasiExit(code >>> 0);
    },
    proc_raise: () => Errno.NOSYS,
    sock_accept: () => Errno.NOSYS,
    sock_recv: () => Errno.NOSYS,
    sock_send: () => Errno.NOSYS,
    sock_shutdown: () => Errno.NOSYS,
    fd_write: (fd: number, iovs: number, n: number, nwritten: number) => {
      const m = mem();
      const bufs = m.iovecs(iovs, n);
      m.check(nwritten, 4);
      let total = 0;
      if (fd === 1 || fd === 2) {
        for (const b of bufs) {
          (fd === 1 ? out : err).write(b);
          total += b.length;
        }
      } else if (fd === 0) {
        return Errno.BADF;
      } else {
        const all = new Uint8Array(bufs.reduce((k, b) => k + b.length, 0));
        let off = 0;
        for (const b of bufs) {
          all.set(b, off);
          off += b.length;
        }
        const r = fs.write(fd, all, null);
        if (typeof r === "number") return r;
        total = r.n;
      }
      m.setU32(nwritten, total);
      return Errno.SUCCESS;
    },
    poll_oneoff: (inPtr: number, outPtr: number, nsubs: number, neventsPtr: number) => {
      if (nsubs === 0) return Errno.INVAL;
      if (nsubs > 64) return Errno.INVAL;
      const m = mem();
      m.check(inPtr, nsubs * 48);
      m.check(outPtr, nsubs * 32);
      const nowMono = clock.monotonicNs();
      let wakeNs: bigint | null = null;
      const ready: { userdata: bigint; type: number; error: number }[] = [];
      const clocks: { userdata: bigint; at: bigint }[] = [];
      for (let i = 0; i < nsubs; i++) {
        const s = inPtr + i * 48;
        const userdata = m.u64At(s);
        const tag = m.u8At(s + 8);
        if (tag === 0) {
          const id = m.u32At(s + 16);
          const timeout = m.u64At(s + 24);
          const abs = (m.u16At(s + 40) & 1) !== 0;
          const now = nowNs(id);
          if (now === null) {
            ready.push({ userdata, type: 0, error: Errno.INVAL });
            continue;
          }
          const rel = abs ? (timeout > now ? timeout - now : 0n) : timeout;
          const at = nowMono + rel;
          clocks.push({ userdata, at });
          if (wakeNs === null || at < wakeNs) wakeNs = at;
        } else if (tag === 1 || tag === 2) {
          const fd = m.u32At(s + 16);
          const ok = fd <= 2 || typeof fs.fdstat(fd) !== "number";
          ready.push({ userdata, type: tag, error: ok ? Errno.SUCCESS : Errno.BADF });
        } else {
          ready.push({ userdata, type: tag, error: Errno.INVAL });
        }
      }
      if (ready.length === 0 && wakeNs !== null) {
        const waitMs = Number(wakeNs - nowMono) / 1e6;
        const leftMs = opts.deadline() - Date.now();
        if (waitMs > leftMs) {
          if (leftMs > 0) sleep(leftMs);
          throw new WasiDeadline(
            `poll_oneoff would sleep ${Math.round(waitMs)} ms past the deadline`,
          );
        }
        if (waitMs > 0) sleep(waitMs);
      }
      const after = clock.monotonicNs();
      for (const c of clocks) {
        if (c.at <= after) ready.push({ userdata: c.userdata, type: 0, error: 0 });
      }
      ready.forEach((ev, i) => {
        const o = outPtr + i * 32;
        m.setU64(o, ev.userdata);
        m.setU16(o + 8, ev.error);
        m.setU8(o + 10, ev.type);
        m.setU64(o + 16, 0n);
        m.setU16(o + 24, 0);
      });
      m.setU32(neventsPtr, ready.length);
      return Errno.SUCCESS;
    },
  };
  const all = { ...fsCalls(fs, mem), ...core };
  const imports: Wasi["imports"] = {};
  for (const name of WASI_FUNCTIONS) {
    const f = all[name] as ((...a: unknown[]) => number | void) | undefined;
    imports[name] = f
      ? (...a: never[]) => {
        try {
          return f(...a);
        } catch (e) {
          if (e instanceof WasiExit || e instanceof WasiDeadline) throw e;
          if (e instanceof Fault || e instanceof RangeError) return Errno.FAULT;
          return Errno.IO;
        }
      }
      : () => Errno.NOSYS;
  }
  return {
    imports,
    fs,
    flush: () => {
      out.flush();
      err.flush();
    },
    close: () => fs.closeAll(),
  };
}
