/**
 * The plugins of one sandbox host process: instantiation with the metering and memory
 * hooks, loads, unloads and calls with their per-call limits (`call_state.ts`).
 *
 * @module
 */
import createPlugin, { type CallContext } from "@extism/extism";
import {
  type CallLimits,
  FUEL_RESET,
  type HostFailure,
  RC_GLOBAL,
  type ToHost,
} from "../protocol.ts";
import { classify, Stop } from "./classify.ts";
import { writeFrame } from "./child_io.ts";
import { callState, charge, hostCall, type Hosted } from "./call_state.ts";
import { GuestEnv, type GuestSetup } from "../kernel/guest.ts";
import { WASI_FS_FN } from "../wasi/fs_remote.ts";

/**
 * Fuel handed out per refill, i.e. how often the deadline is checked: 2^18 units is ≤ ~2 ms
 * of the slowest hostile loop measured in V8's baseline tier on a loaded 2-core box
 * (bench/instrument_bench.ts "ms per refill chunk": worst 8 ms at 2^20), and one refill
 * (~0.2 µs) per ≥ 0.1 ms of work costs nothing measurable.
 */
const FUEL_CHUNK = 1 << 18;

const decoder = new TextDecoder();
/** The daemon: when it is gone (its pid no longer our parent) a running call ends the process. */
const PARENT = Deno.ppid;

type LoadMsg = Extract<ToHost, { t: "load" }>;

const plugins = new Map<number, Hosted>();

const encoder = new TextEncoder();

function newGuest(key: number, setup: GuestSetup): GuestEnv {
  const self = () => {
    const h = plugins.get(key) ?? loading.get(key);
    if (!h) throw new Stop({ code: "internal", message: "Plugin is not loaded" });
    return h;
  };
  return new GuestEnv(setup, {
    log: (level, msg, fields) =>
      writeFrame({ t: "log", key, level, msg: msg.slice(0, 8192), ...(fields ? { fields } : {}) }),
    hostCall: (fn, input) => decoder.decode(hostCall(self(), fn, encoder.encode(input))),
    fsCall: (input) => hostCall(self(), WASI_FS_FN, input),
    deadline: () => self().call.limits.deadline,
    stdout: (line) => writeFrame({ t: "log", key, level: "stdout", msg: line.slice(0, 8192) }),
    audit: () => {}, // files are checked (and refusals audited) in the daemon
  });
}

/** Plugins being instantiated (their start function may already call WASI). */
const loading = new Map<number, Hosted>();

async function instantiate(h: Hosted): Promise<void> {
  const guest = h.guest.functions();
  const user: Record<string, (ctx: CallContext, addr: bigint) => bigint> = {};
  for (const fn of h.hostFunctions) {
    user[fn] = (ctx, addr) => {
      const input = ctx.read(addr)?.bytes() ?? new Uint8Array();
      return ctx.store(hostCall(h, fn, input));
    };
  }
  const kernelLog = (level: string) => (msg: string) =>
    writeFrame({ t: "log", key: h.key, level, msg: String(msg).slice(0, 4096) });
  h.plugin = await createPlugin({ wasm: [{ module: h.module }] }, {
    useWasi: false,
    runInWorker: false,
    logger: {
      info: kernelLog("info"),
      debug: kernelLog("debug"),
      warn: kernelLog("warn"),
      error: kernelLog("error"),
    } as unknown as NonNullable<NonNullable<Parameters<typeof createPlugin>[1]>["logger"]>,
    functions: {
      ...guest,
      "extism:host/user": user,
      // Metered code asks for the next chunk of fuel when its counter runs out.
      "mr:sandbox": {
        refill: (): number => {
          // an orphan (the daemon was killed) must not keep running a long call
          if (Deno.ppid !== PARENT) Deno.exit(1);
          const c = h.call;
          if (Date.now() >= c.limits.deadline) {
            c.timedOut = true;
            return 0;
          }
          if (c.fuelLeft <= 0) {
            c.fuelOut = true;
            return 0;
          }
          const chunk = Math.min(c.fuelLeft, FUEL_CHUNK);
          c.fuelLeft -= chunk;
          return chunk;
        },
      },
      // Kernel allocations count against memory_mb with linear memory, tables and replies.
      "extism:host/env": {
        ...guest["extism:host/env"],
        alloc: (ctx: CallContext, n: bigint) => {
          charge(h, Number(n), "Extism allocation");
          return ctx.alloc(Number(n));
        },
      },
    },
  });
  const instance = await h.plugin.getInstance();
  const fuel = instance.exports[FUEL_RESET];
  // a module without memory is fine: Extism's kernel keeps its blocks host-side
  const memory = instance.exports["memory"];
  h.guest.bind(instance);
  // absent only in a module loaded without metering (a test-only load option)
  h.fuel = typeof fuel === "function" ? fuel as () => void : () => {};
  const rc = instance.exports[RC_GLOBAL];
  h.rc = rc instanceof WebAssembly.Global ? rc : null;
  h.memory = memory instanceof WebAssembly.Memory ? memory : null;
}

/** Compiles and instantiates a plugin (its start function runs under `msg.limits`). */
export async function loadPlugin(msg: LoadMsg, bytes: Uint8Array): Promise<string[]> {
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (err) {
    throw new Stop({ code: "invalid_module", message: `Module cannot be compiled: ${err}` });
  }
  const h: Hosted = {
    key: msg.key,
    name: msg.name,
    module,
    hostFunctions: msg.hostFunctions,
    maxPages: msg.maxPages,
    tableBytes: msg.tableBytes,
    plugin: null,
    fuel: () => {},
    rc: null,
    memory: null,
    call: callState(msg.limits),
    guest: newGuest(msg.key, msg.guest),
  };
  loading.set(msg.key, h);
  try {
    await instantiate(h);
  } catch (err) {
    if (err instanceof Stop) throw err;
    const { failure } = classify(facts(h), err, "start");
    if (failure.code === "trap") {
      throw new Stop({ code: "invalid_module", message: `Module cannot be instantiated: ${err}` });
    }
    throw new Stop(failure);
  } finally {
    loading.delete(msg.key);
  }
  plugins.set(msg.key, h);
  return WebAssembly.Module.exports(module).filter((e) => e.kind === "function").map((e) => e.name);
}

/** Closes and forgets a plugin. */
export async function unloadPlugin(key: number): Promise<void> {
  const h = plugins.get(key);
  plugins.delete(key);
  h?.guest.close();
  await h?.plugin?.close();
}

function facts(h: Hosted) {
  return {
    timedOut: h.call.timedOut,
    fuelOut: h.call.fuelOut,
    memoryBytes: h.memory?.buffer.byteLength ?? 0,
    maxPages: h.maxPages,
  };
}

/** Runs one call; host replies and kernel blocks are freed when it ends. */
export async function callPlugin(
  key: number,
  fn: string,
  limits: CallLimits,
  input: Uint8Array | null,
): Promise<{ output: Uint8Array } | { failure: HostFailure }> {
  const h = plugins.get(key);
  if (!h?.plugin) return { failure: { code: "internal", message: "Plugin is not loaded" } };
  h.call = callState(limits);
  h.fuel();
  if (h.rc) h.rc.value = 0;
  h.guest.begin();
  try {
    let bytes: Uint8Array;
    try {
      const out = await h.plugin.call(fn, input ?? undefined);
      const set = h.guest.end();
      bytes = out ? out.bytes() : set;
    } catch (err) {
      // proc_exit(0) ends a call with the output set so far
      const o = h.guest.outcome(err, fn);
      if (!o || !("output" in o)) throw err;
      bytes = o.output;
    }
    const rc = h.rc ? Number(h.rc.value) : 0;
    if (rc !== 0) {
      const detail = bytes.byteLength ? `: ${decoder.decode(bytes.subarray(0, 500))}` : "";
      return {
        failure: { code: "plugin_error", message: `Export "${fn}" returned ${rc}${detail}` },
      };
    }
    if (bytes.byteLength > limits.outputMax) {
      return {
        failure: {
          code: "output_too_large",
          message:
            `Output of "${fn}" is ${bytes.byteLength} bytes, the limit is ${limits.outputMax}`,
        },
      };
    }
    return { output: bytes.slice() };
  } catch (err) {
    const o = h.guest.outcome(err, fn);
    const { failure, broken } = o && "failure" in o ? o : classify(facts(h), err, fn);
    if (broken) {
      // A trap can leave globals/stack pointers inconsistent: start from a fresh instance
      // (its start function, if any, runs under this call's remaining limits).
      try {
        await h.plugin.close();
        h.plugin = null;
        h.memory = null;
        h.call = callState({ ...limits, deadline: Math.max(limits.deadline, Date.now() + 1000) });
        await instantiate(h);
      } catch (e) {
        plugins.delete(key);
        failure.message += `; re-instantiation failed: ${e instanceof Error ? e.message : e}`;
      }
    }
    return { failure };
  } finally {
    // frees the call's kernel blocks, host replies included
    await h.plugin?.reset();
  }
}
