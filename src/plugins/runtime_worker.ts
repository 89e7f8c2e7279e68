/**
 * A runtime thread: hosts many in-thread Extism plugins. Host functions block on
 * `Atomics.wait` until the main thread writes the reply into the shared buffer, bounded by
 * the call's deadline; runaway code stops itself through the injected fuel counter.
 *
 * @module
 */
import createPlugin, { type CallContext, type Plugin } from "@extism/extism";
import {
  type CallHeader,
  type FromWorker,
  FUEL_RESET,
  MAIL_BLEN,
  MAIL_CALL,
  MAIL_DATA_BYTES,
  MAIL_DONE,
  MAIL_HEADER,
  MAIL_HLEN,
  MAIL_IDLE,
  MAIL_KICK,
  MAIL_STATE,
  RC_GLOBAL,
  type ResultHeader,
  SAB_DATA_BYTES,
  SAB_HEADER,
  SAB_LEN,
  SAB_SEQ,
  SAB_STATE,
  SAB_WAITING,
  type ToWorker,
  type WorkerFailure,
} from "./protocol.ts";

interface WorkerScope {
  onmessage: ((ev: MessageEvent<ToWorker>) => void | Promise<void>) | null;
  postMessage(msg: FromWorker, transfer?: Transferable[]): void;
}
const scope = globalThis as unknown as WorkerScope;

/** A stop raised inside a host/kernel function, carried out through the wasm frames. */
class Stop extends Error {
  override name = "Stop";
  constructor(readonly failure: WorkerFailure) {
    super(failure.message);
  }
}

interface Hosted {
  key: number;
  name: string;
  module: WebAssembly.Module;
  hostFunctions: string[];
  maxPages: number;
  plugin: Plugin;
  /** Zeroes the module's fuel counter. */
  fuel: () => void;
  rc: WebAssembly.Global | null;
  memory: WebAssembly.Memory;
  /** Per-call state read by host/kernel functions. */
  call: CallState;
}

/** Per-call limits and what stopped the call. */
interface CallState {
  deadline: number;
  memBytes: number;
  allocated: number;
  /** Fuel not yet handed to the module's counter. */
  fuelLeft: number;
  timedOut: boolean;
  fuelOut: boolean;
}

/** Fuel handed out per refill: the deadline is checked about once a millisecond of loop. */
const FUEL_CHUNK = 1 << 20;

function freshCallState(): CallState {
  return {
    deadline: Date.now() + 60_000,
    memBytes: Number.MAX_SAFE_INTEGER,
    allocated: 0,
    fuelLeft: Number.MAX_SAFE_INTEGER,
    timedOut: false,
    fuelOut: false,
  };
}

let ctrl: Int32Array | null = null;
let mail: Int32Array | null = null;
let mailData: Uint8Array | null = null;
let serving = false;
const encoder = new TextEncoder();
let data: Uint8Array | null = null;
let hostSeq = 0;
const plugins = new Map<number, Hosted>();
const decoder = new TextDecoder();
/** How long an idle runtime thread polls the mailbox before it sleeps in `Atomics.wait`. */
const SPIN_MS = 0.05;
/** How long a thread waiting for a host function's answer polls before it sleeps. */
const HOST_SPIN_MS = 0.15;

function post(msg: FromWorker, transfer?: Transferable[]): void {
  scope.postMessage(msg, transfer);
}

/** Forwards `fn(input)` to the main thread and blocks until it answers or the deadline passes. */
function hostCall(h: Hosted, fn: string, input: string): string {
  if (!ctrl || !data) {
    throw new Stop({ code: "internal", message: "Runtime thread not initialised" });
  }
  const seq = ++hostSeq;
  Atomics.store(ctrl, SAB_STATE, 0);
  Atomics.store(ctrl, SAB_WAITING, seq);
  post({ t: "host", seq, key: h.key, fn, input });
  // most host functions answer within ~100 µs: poll that long before sleeping (a futex
  // wake-up costs ~60 µs on the test VM)
  const spinUntil = performance.now() + HOST_SPIN_MS;
  while (Atomics.load(ctrl, SAB_STATE) === 0 && performance.now() < spinUntil) {
    // spin
  }
  for (;;) {
    const remaining = h.call.deadline - Date.now();
    if (remaining <= 0) {
      Atomics.store(ctrl, SAB_WAITING, 0);
      throw new Stop({
        code: "timeout",
        message: `Call exceeded its deadline while waiting for host function "${fn}"`,
      });
    }
    Atomics.wait(ctrl, SAB_STATE, 0, remaining);
    if (Atomics.load(ctrl, SAB_STATE) === 1) {
      if (Atomics.load(ctrl, SAB_SEQ) === seq) break;
      Atomics.store(ctrl, SAB_STATE, 0); // a late reply to an abandoned call
    }
  }
  Atomics.store(ctrl, SAB_WAITING, 0);
  const len = Atomics.load(ctrl, SAB_LEN);
  return decoder.decode(data.subarray(0, Math.min(len, SAB_DATA_BYTES)));
}

function logFromPlugin(h: Hosted, input: string): string {
  let level = "info";
  let msg = input;
  let fields: Record<string, unknown> | undefined;
  try {
    const v = JSON.parse(input) as { level?: unknown; msg?: unknown; fields?: unknown };
    if (typeof v.level === "string") level = v.level;
    if (typeof v.msg === "string") msg = v.msg;
    if (v.fields && typeof v.fields === "object") fields = v.fields as Record<string, unknown>;
  } catch {
    // not JSON: log the raw text
  }
  post({ t: "log", key: h.key, level, msg, ...(fields ? { fields } : {}) });
  return "{}";
}

async function instantiate(h: Omit<Hosted, "plugin" | "fuel" | "memory" | "rc">): Promise<Hosted> {
  const partial = h as Hosted;
  const user: Record<string, (ctx: CallContext, addr: bigint) => bigint> = {};
  for (const fn of h.hostFunctions) {
    user[fn] = (ctx, addr) => {
      const input = ctx.read(addr)?.text() ?? "";
      const out = fn === "mr_log" ? logFromPlugin(partial, input) : hostCall(partial, fn, input);
      return ctx.store(out);
    };
  }
  const kernelLog = (level: string) => (msg: string) =>
    post({ t: "log", key: h.key, level, msg: String(msg) });
  const plugin = await createPlugin({ wasm: [{ module: h.module }] }, {
    useWasi: false,
    runInWorker: false,
    logger: {
      info: kernelLog("info"),
      debug: kernelLog("debug"),
      warn: kernelLog("warn"),
      error: kernelLog("error"),
    } as unknown as NonNullable<NonNullable<Parameters<typeof createPlugin>[1]>["logger"]>,
    functions: {
      "extism:host/user": user,
      // Metered code asks for the next chunk of fuel when its counter runs out.
      "mr:sandbox": {
        refill: (): number => {
          const c = partial.call;
          if (Date.now() >= c.deadline) {
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
      // Cap what the plugin allocates through the kernel per call (host-side memory).
      "extism:host/env": {
        alloc: (ctx: CallContext, n: bigint) => {
          const size = Number(n);
          partial.call.allocated += size;
          if (partial.call.allocated > partial.call.memBytes) {
            throw new Stop({
              code: "memory_limit",
              message: `Plugin allocated more than ${partial.call.memBytes} bytes of Extism memory`,
            });
          }
          return ctx.alloc(size);
        },
      },
    },
  });
  const instance = await plugin.getInstance();
  const fuel = instance.exports[FUEL_RESET];
  const memory = instance.exports["memory"];
  if (typeof fuel !== "function" || !(memory instanceof WebAssembly.Memory)) {
    await plugin.close();
    throw new Stop({ code: "invalid_module", message: "Instrumented module lacks fuel or memory" });
  }
  partial.plugin = plugin;
  partial.fuel = fuel as () => void;
  const rc = instance.exports[RC_GLOBAL];
  partial.rc = rc instanceof WebAssembly.Global ? rc : null;
  partial.memory = memory;
  return partial;
}

function classify(
  h: Hosted,
  err: unknown,
  fn: string,
): { failure: WorkerFailure; broken: boolean } {
  if (err instanceof Stop) return { failure: err.failure, broken: true };
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof RangeError && /call stack/i.test(msg)) {
    return { failure: { code: "trap", message: `Stack overflow in "${fn}"` }, broken: true };
  }
  if (err instanceof WebAssembly.RuntimeError) {
    if (h.call.timedOut) {
      return {
        failure: { code: "timeout", message: `Call to "${fn}" exceeded its deadline` },
        broken: true,
      };
    }
    if (h.call.fuelOut) {
      return {
        failure: { code: "fuel_exhausted", message: `Call to "${fn}" ran out of fuel` },
        broken: true,
      };
    }
    if (h.memory.buffer.byteLength >= h.maxPages * 65536) {
      return {
        failure: {
          code: "memory_limit",
          message: `Call to "${fn}" trapped at the memory cap (${h.maxPages} pages): ${msg}`,
        },
        broken: true,
      };
    }
    return { failure: { code: "trap", message: `Call to "${fn}" trapped: ${msg}` }, broken: true };
  }
  if (msg.startsWith("Plugin-originated error: ")) {
    return {
      failure: { code: "plugin_error", message: msg.slice("Plugin-originated error: ".length) },
      broken: false,
    };
  }
  return { failure: { code: "trap", message: `Call to "${fn}" failed: ${msg}` }, broken: true };
}

function runFailure(failure: WorkerFailure): { failure: WorkerFailure } {
  return { failure };
}

async function handleCall(
  req: CallHeader,
  input: Uint8Array | null,
): Promise<{ output: Uint8Array } | { failure: WorkerFailure }> {
  let h = plugins.get(req.key);
  if (!h) return runFailure({ code: "internal", message: "Plugin is not loaded" });
  h.call.deadline = req.deadline;
  h.call.memBytes = req.memBytes;
  h.call.allocated = 0;
  h.call.timedOut = false;
  h.call.fuelOut = false;
  h.call.fuelLeft = req.fuel;
  h.fuel();
  if (h.rc) h.rc.value = 0;
  try {
    const out = await h.plugin.call(req.fn, input ?? undefined);
    const bytes = out ? out.bytes() : new Uint8Array();
    const rc = h.rc ? Number(h.rc.value) : 0;
    if (rc !== 0) {
      return runFailure({
        code: "plugin_error",
        message: `Export "${req.fn}" returned ${rc}${
          bytes.byteLength ? `: ${decoder.decode(bytes.subarray(0, 500))}` : ""
        }`,
      });
    }
    if (bytes.byteLength > req.outputMax || bytes.byteLength > MAIL_DATA_BYTES - 1024) {
      return runFailure({
        code: "output_too_large",
        message: `Output of "${req.fn}" is ${bytes.byteLength} bytes, the limit is ${
          Math.min(req.outputMax, MAIL_DATA_BYTES - 1024)
        }`,
      });
    }
    return { output: bytes };
  } catch (err) {
    const { failure, broken } = classify(h, err, req.fn);
    if (broken) {
      // A trap can leave globals/stack pointers inconsistent: start from a fresh instance.
      try {
        await h.plugin.close();
        h = await instantiate({ ...h, call: freshCallState() });
        plugins.set(req.key, h);
      } catch (e) {
        plugins.delete(req.key);
        failure.message += `; re-instantiation failed: ${e instanceof Error ? e.message : e}`;
      }
    }
    return runFailure(failure);
  } finally {
    await h.plugin.reset();
  }
}

/**
 * Serves calls from the mailbox until a kick asks the thread to return to its event loop
 * (to receive a load/unload message, whose handler restarts this loop).
 */
async function serveMailbox(): Promise<void> {
  if (!mail || !mailData || serving) return;
  serving = true;
  try {
    for (;;) {
      let state = Atomics.load(mail, MAIL_STATE);
      if (state === MAIL_DONE || state === MAIL_IDLE) {
        // between calls (the main thread taking the last result, then the next call coming
        // back to back) poll briefly before sleeping: waking a thread from a futex sleep
        // cost ~60 µs on the test VM, three times a whole no-op call
        const was = state;
        const spinUntil = performance.now() + SPIN_MS;
        while (state === was && performance.now() < spinUntil) {
          state = Atomics.load(mail, MAIL_STATE);
        }
        if (state === was) {
          // the main thread notifies both when it takes a result and when it writes a call
          Atomics.wait(mail, MAIL_STATE, was, was === MAIL_DONE ? 5 : Infinity);
          continue;
        }
        if (state === MAIL_DONE || state === MAIL_IDLE) continue;
      }
      if (state === MAIL_KICK) {
        Atomics.store(mail, MAIL_STATE, MAIL_IDLE);
        return;
      }
      if (state !== MAIL_CALL) continue;
      const hlen = Atomics.load(mail, MAIL_HLEN);
      const blen = Atomics.load(mail, MAIL_BLEN);
      const req = JSON.parse(decoder.decode(mailData.subarray(0, hlen))) as CallHeader;
      const input = blen < 0 ? null : mailData.slice(hlen, hlen + blen);
      const result = await handleCall(req, input);
      const header: ResultHeader = "failure" in result ? { failure: result.failure } : {};
      const hb = encoder.encode(JSON.stringify(header));
      mailData.set(hb, 0);
      if ("output" in result) mailData.set(result.output, hb.length);
      Atomics.store(mail, MAIL_HLEN, hb.length);
      Atomics.store(mail, MAIL_BLEN, "output" in result ? result.output.byteLength : -1);
      Atomics.store(mail, MAIL_STATE, MAIL_DONE);
      Atomics.notify(mail, MAIL_STATE);
    }
  } finally {
    serving = false;
  }
}

async function handleLoad(msg: Extract<ToWorker, { t: "load" }>): Promise<void> {
  try {
    const module = await WebAssembly.compile(msg.bytes as Uint8Array<ArrayBuffer>);
    const h = await instantiate({
      key: msg.key,
      name: msg.name,
      module,
      hostFunctions: msg.hostFunctions,
      maxPages: msg.maxPages,
      call: freshCallState(),
    });
    plugins.set(msg.key, h);
    const exports = WebAssembly.Module.exports(module).filter((e) => e.kind === "function")
      .map((e) => e.name);
    post({ t: "done", id: msg.id, exports });
  } catch (err) {
    const failure = err instanceof Stop
      ? err.failure
      : { code: "invalid_module" as const, message: `Module cannot be instantiated: ${err}` };
    post({ t: "fail", id: msg.id, failure });
  }
}

scope.onmessage = async (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  try {
    if (msg.t === "init") {
      ctrl = new Int32Array(msg.sab, 0, SAB_HEADER / 4);
      data = new Uint8Array(msg.sab, SAB_HEADER);
      mail = new Int32Array(msg.mail, 0, MAIL_HEADER / 4);
      mailData = new Uint8Array(msg.mail, MAIL_HEADER);
    } else if (msg.t === "load") {
      await handleLoad(msg);
    } else if (msg.t === "unload") {
      const h = plugins.get(msg.key);
      plugins.delete(msg.key);
      await h?.plugin.close();
      post({ t: "done", id: msg.id });
    }
  } catch (err) {
    post({ t: "log", key: -1, level: "error", msg: `Runtime thread error: ${err}` });
  }
  void serveMailbox();
};
