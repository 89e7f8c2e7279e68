/**
 * Runs Extism-style modules under plain `WebAssembly` for instrumenter tests: a minimal
 * deterministic Extism kernel (handles, input, output), host functions that record their
 * calls and answer `{}`, WASI functions that answer ENOSYS, and the runtime's
 * `mr:sandbox.refill` with a countable budget.
 *
 * @module
 */

/** A module instance with its kernel state. */
export interface KernelRun {
  exports: Record<string, unknown>;
  /** Host-function calls as `fn input`. */
  calls: string[];
  /** Sets the next call's input. */
  input(text: string): void;
  /** Output of the last call (text). */
  output(): string;
  /** Fuel handed out through refill so far. */
  handedOut(): number;
  /** Sets the refill budget (fuel still to hand out); refill answers 0 once it is spent. */
  budget(n: number): void;
  memory(): Uint8Array;
}

/** Instantiates `wasm` with the fake kernel; `chunk` is the refill size. */
export async function runWithKernel(wasm: Uint8Array, chunk = 1 << 20): Promise<KernelRun> {
  const blocks = new Map<bigint, Uint8Array>();
  let next = 16n;
  let input = new Uint8Array();
  let out = new Uint8Array();
  let handed = 0;
  let left = Number.MAX_SAFE_INTEGER;
  const calls: string[] = [];
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const find = (addr: bigint): [Uint8Array, number] => {
    for (const [start, b] of blocks) {
      if (addr >= start && addr < start + BigInt(b.length)) return [b, Number(addr - start)];
    }
    throw new Error(`bad kernel address ${addr}`);
  };
  const alloc = (n: bigint): bigint => {
    const h = next;
    blocks.set(h, new Uint8Array(Number(n)));
    next += n + 16n;
    return h;
  };
  const store = (bytes: Uint8Array): bigint => {
    const h = alloc(BigInt(bytes.length));
    blocks.get(h)!.set(bytes);
    return h;
  };
  const env = {
    alloc,
    free: (h: bigint) => void blocks.delete(h),
    length: (h: bigint) => BigInt(blocks.get(h)?.length ?? 0),
    length_unsafe: (h: bigint) => BigInt(blocks.get(h)?.length ?? 0),
    load_u8: (a: bigint) => {
      const [b, i] = find(a);
      return b[i]!;
    },
    load_u64: (a: bigint) => {
      const [b, i] = find(a);
      return new DataView(b.buffer).getBigUint64(i, true);
    },
    store_u8: (a: bigint, v: number) => {
      const [b, i] = find(a);
      b[i] = v;
    },
    store_u64: (a: bigint, v: bigint) => {
      const [b, i] = find(a);
      new DataView(b.buffer).setBigUint64(i, v, true);
    },
    input_length: () => BigInt(input.length),
    input_load_u8: (a: bigint) => input[Number(a)] ?? 0,
    input_load_u64: (a: bigint) => {
      const tmp = new Uint8Array(8);
      tmp.set(input.subarray(Number(a), Number(a) + 8));
      return new DataView(tmp.buffer).getBigUint64(0, true);
    },
    output_set: (h: bigint, n: bigint) => {
      const [b, i] = find(h);
      out = b.slice(i, i + Number(n));
    },
    error_set: () => {},
    config_get: () => 0n,
    var_get: () => 0n,
    var_set: () => {},
    log_info: () => {},
    log_warn: () => {},
    log_debug: () => {},
    log_error: () => {},
  };
  const user = new Proxy({}, {
    get: (_t, fn: string) => (h: bigint) => {
      const b = blocks.get(h);
      calls.push(`${fn} ${b ? dec.decode(b) : ""}`);
      return store(enc.encode("{}"));
    },
  });
  // WASI: every function answers ENOSYS (52), recorded like a host call; proc_exit throws
  const wasi = new Proxy({}, {
    get: (_t, fn: string) => (...args: unknown[]) => {
      calls.push(`wasi.${fn} ${args.length}`);
      if (fn === "proc_exit") throw new Error(`proc_exit(${args[0]})`);
      return 52;
    },
  });
  const refill = () => {
    const c = Math.min(chunk, left);
    left -= c;
    handed += c;
    return c;
  };
  const { instance } = await WebAssembly.instantiate(wasm as Uint8Array<ArrayBuffer>, {
    "extism:host/env": env,
    "extism:host/user": user,
    "mr:sandbox": { refill },
    "wasi_snapshot_preview1": wasi,
  });
  const exports = instance.exports as Record<string, unknown>;
  return {
    exports,
    calls,
    input: (t) => void (input = enc.encode(t)),
    output: () => dec.decode(out),
    handedOut: () => handed,
    budget: (n) => void (left = n),
    memory: () => new Uint8Array((exports["memory"] as WebAssembly.Memory).buffer),
  };
}

/** Fuel a finished call of an instrumented module consumed: handed out minus what is left. */
export function fuelUsed(run: KernelRun): number {
  return run.handedOut() - (run.exports["__mr_fuel_left"] as () => number)();
}
