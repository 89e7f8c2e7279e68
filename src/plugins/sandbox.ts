/**
 * The sandbox: a pool of runtime threads hosting many instrumented plugins, with host
 * functions answered on the main thread through a SharedArrayBuffer.
 *
 * @module
 */
import { join } from "node:path";
import { grantsSchema, type Limits, limitsSchema } from "../desired/spec.ts";
import type { Logger } from "../log/logger.ts";
import { checkLoadable, compileModule, describeModule, sha256Hex } from "./abi.ts";
import { type HostCallContext, runHostFunction } from "./host_functions.ts";
import { INSTRUMENT_CACHE_DIR, instrumentCached } from "./instrument_cache.ts";
import {
  type CallHeader,
  type FromWorker,
  MAIL_BLEN,
  MAIL_CALL,
  MAIL_DATA_BYTES,
  MAIL_HEADER,
  MAIL_HLEN,
  MAIL_IDLE,
  MAIL_KICK,
  MAIL_STATE,
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
import { openStateStore, type StateStore } from "./state.ts";
import {
  type AgentPlugin,
  type LoadOptions,
  type ModuleInfo,
  PluginError,
  type Sandbox,
  SandboxError,
  type SandboxOptions,
} from "./types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Extra time the main thread grants a runtime thread past a call's deadline before giving up on it. */
const WATCHDOG_GRACE_MS = 1_000;
/**
 * How long the main thread blocks waiting for a call before going async: long enough for a
 * short call, short enough that a host call made in that window waits at most this long.
 */
const SYNC_WAIT_MS = 0.2;

interface Pending {
  resolve(msg: Extract<FromWorker, { t: "done" }>): void;
  reject(err: Error): void;
}

interface PluginEntry {
  key: number;
  name: string;
  ctx: HostCallContext;
  bytes: Uint8Array;
  hostFunctions: string[];
  maxPages: number;
  thread: RuntimeThread;
  abort: AbortController;
}

class RuntimeThread {
  readonly worker: Worker;
  readonly ctrl: Int32Array;
  readonly data: Uint8Array;
  readonly mail: Int32Array;
  readonly mailData: Uint8Array;
  readonly pending = new Map<number, Pending>();
  /** Operations on this thread run one at a time (it is one JS stack). */
  #tail: Promise<unknown> = Promise.resolve();
  readonly plugins = new Set<number>();
  dead = false;

  constructor(private readonly sandbox: SandboxImpl) {
    const sab = new SharedArrayBuffer(SAB_HEADER + SAB_DATA_BYTES);
    this.ctrl = new Int32Array(sab, 0, SAB_HEADER / 4);
    this.data = new Uint8Array(sab, SAB_HEADER);
    const mail = new SharedArrayBuffer(MAIL_HEADER + MAIL_DATA_BYTES);
    this.mail = new Int32Array(mail, 0, MAIL_HEADER / 4);
    this.mailData = new Uint8Array(mail, MAIL_HEADER);
    this.worker = new Worker(new URL("./runtime_worker.ts", import.meta.url), { type: "module" });
    this.worker.onmessage = (ev: MessageEvent<FromWorker>) => this.#onMessage(ev.data);
    this.worker.onerror = (ev) => {
      ev.preventDefault();
      this.sandbox.logger.error("runtime thread crashed", { err: ev.message });
      this.kill(new Error(`Runtime thread crashed: ${ev.message}`));
    };
    this.post({ t: "init", sab, mail });
  }

  /** Runs `fn` when the thread's previous operation has finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  /** A load/unload by message: kick the thread out of its mailbox loop to receive it. */
  message(msg: ToWorker & { id: number }, transfer: Transferable[] = []): Promise<
    Extract<FromWorker, { t: "done" }>
  > {
    return this.exclusive(() => {
      const p = this.request(msg, transfer);
      Atomics.store(this.mail, MAIL_STATE, MAIL_KICK);
      Atomics.notify(this.mail, MAIL_STATE);
      return p;
    });
  }

  /**
   * Runs a call through the mailbox. Resolves with the output or rejects with the stop;
   * rejects with `timeout` when the thread does not answer within `waitMs`.
   */
  call(header: CallHeader, input: Uint8Array | null, waitMs: number): Promise<Uint8Array> {
    return this.exclusive(async () => {
      if (this.dead) throw new SandboxError("trap", "Runtime thread is gone");
      const hb = encoder.encode(JSON.stringify(header));
      if (hb.length + (input?.length ?? 0) > MAIL_DATA_BYTES) {
        throw new RangeError(`Call input too large: ${input?.length} bytes`);
      }
      this.mailData.set(hb, 0);
      if (input) this.mailData.set(input, hb.length);
      Atomics.store(this.mail, MAIL_HLEN, hb.length);
      Atomics.store(this.mail, MAIL_BLEN, input ? input.length : -1);
      Atomics.store(this.mail, MAIL_STATE, MAIL_CALL);
      Atomics.notify(this.mail, MAIL_STATE);
      // Short calls finish within microseconds: wait for them synchronously (a futex wait,
      // no event-loop round trip, ~4x faster for a no-op); longer ones go async.
      let outcome: "ok" | "not-equal" | "timed-out" = Atomics.wait(
        this.mail,
        MAIL_STATE,
        MAIL_CALL,
        SYNC_WAIT_MS,
      );
      if (outcome === "timed-out") {
        const w = Atomics.waitAsync(this.mail, MAIL_STATE, MAIL_CALL, waitMs);
        outcome = w.async ? await w.value : w.value;
      }
      if (outcome === "timed-out") {
        // Stuck past its deadline: replace the thread (terminate() cannot stop it).
        void this.sandbox.replaceThread(this);
        throw new SandboxError(
          "timeout",
          `Call to "${header.fn}" exceeded its deadline and its thread did not stop`,
        );
      }
      if (this.dead) throw new SandboxError("trap", "Runtime thread is gone");
      const hlen = Atomics.load(this.mail, MAIL_HLEN);
      const blen = Atomics.load(this.mail, MAIL_BLEN);
      const result = JSON.parse(decoder.decode(this.mailData.subarray(0, hlen))) as ResultHeader;
      const output = blen < 0 ? new Uint8Array() : this.mailData.slice(hlen, hlen + blen);
      Atomics.store(this.mail, MAIL_STATE, MAIL_IDLE);
      Atomics.notify(this.mail, MAIL_STATE);
      if (result.failure) throw toError(result.failure);
      return output;
    });
  }

  post(msg: ToWorker, transfer: Transferable[] = []): void {
    this.worker.postMessage(msg, transfer);
  }

  request(msg: ToWorker & { id: number }, transfer: Transferable[] = []): Promise<
    Extract<FromWorker, { t: "done" }>
  > {
    return new Promise((resolve, reject) => {
      if (this.dead) {
        reject(new SandboxError("trap", "Runtime thread is gone"));
        return;
      }
      this.pending.set(msg.id, { resolve, reject });
      this.post(msg, transfer);
    });
  }

  kill(reason: Error): void {
    if (this.dead) return;
    this.dead = true;
    // An idle thread blocks in Atomics.wait, which terminate() does not interrupt: kick it
    // back to its event loop first.
    Atomics.store(this.mail, MAIL_STATE, MAIL_KICK);
    Atomics.notify(this.mail, MAIL_STATE);
    this.worker.terminate();
    for (const p of this.pending.values()) p.reject(reason);
    this.pending.clear();
  }

  #onMessage(msg: FromWorker): void {
    switch (msg.t) {
      case "done": {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        p?.resolve(msg);
        return;
      }
      case "fail": {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        p?.reject(toError(msg.failure));
        return;
      }
      case "log": {
        const entry = this.sandbox.entries.get(msg.key);
        const level = ["debug", "info", "warn", "error"].includes(msg.level)
          ? msg.level as "info"
          : "info";
        this.sandbox.logger[level](msg.msg, { agent: entry?.name, ...(msg.fields ?? {}) });
        return;
      }
      case "host":
        void this.#answerHost(msg);
        return;
    }
  }

  async #answerHost(msg: Extract<FromWorker, { t: "host" }>): Promise<void> {
    const entry = this.sandbox.entries.get(msg.key);
    const reply = entry
      ? await runHostFunction(entry.ctx, msg.fn, msg.input)
      : JSON.stringify({ error: { code: "unavailable", message: "Plugin is closed" } });
    if (Atomics.load(this.ctrl, SAB_WAITING) !== msg.seq) return; // the call gave up waiting
    let bytes = encoder.encode(reply);
    if (bytes.length > SAB_DATA_BYTES) {
      bytes = encoder.encode(JSON.stringify({
        error: { code: "io_error", message: `Host reply larger than ${SAB_DATA_BYTES} bytes` },
      }));
    }
    this.data.set(bytes, 0);
    Atomics.store(this.ctrl, SAB_LEN, bytes.length);
    Atomics.store(this.ctrl, SAB_SEQ, msg.seq);
    Atomics.store(this.ctrl, SAB_STATE, 1);
    Atomics.notify(this.ctrl, SAB_STATE);
  }
}

function toError(f: WorkerFailure): Error {
  if (f.code === "plugin_error") return new PluginError(f.message);
  if (f.code === "internal") return new SandboxError("trap", f.message);
  return new SandboxError(f.code, f.message);
}

class SandboxImpl implements Sandbox {
  readonly logger: Logger;
  readonly entries = new Map<number, PluginEntry>();
  threads: RuntimeThread[] = [];
  #nextId = 1;
  #state: StateStore | null = null;
  #closed = false;

  constructor(readonly options: SandboxOptions) {
    this.logger = options.logger;
    const n = Math.max(1, Math.floor(options.threads ?? 1));
    for (let i = 0; i < n; i++) this.threads.push(new RuntimeThread(this));
  }

  nextId(): number {
    return this.#nextId++;
  }

  state = (): StateStore => {
    this.#state ??= openStateStore(this.options.stateDir);
    return this.#state;
  };

  #pickThread(): RuntimeThread {
    let best = this.threads[0]!;
    for (const t of this.threads) if (t.plugins.size < best.plugins.size) best = t;
    return best;
  }

  /** Replaces a runtime thread stuck past a deadline and reloads its plugins elsewhere. */
  async replaceThread(stuck: RuntimeThread): Promise<void> {
    const idx = this.threads.indexOf(stuck);
    if (idx < 0 || this.#closed) return;
    stuck.kill(new SandboxError("timeout", "Runtime thread stopped after a stuck call"));
    const fresh = new RuntimeThread(this);
    this.threads[idx] = fresh;
    for (const key of stuck.plugins) {
      const entry = this.entries.get(key);
      if (!entry) continue;
      entry.thread = fresh;
      fresh.plugins.add(key);
      await this.loadInto(entry).catch((err) =>
        this.logger.error("plugin reload failed", { agent: entry.name, err })
      );
    }
  }

  async loadInto(entry: PluginEntry): Promise<string[]> {
    const copy = entry.bytes.slice();
    const done = await entry.thread.message({
      t: "load",
      id: this.nextId(),
      key: entry.key,
      name: entry.name,
      bytes: copy,
      hostFunctions: entry.hostFunctions,
      maxPages: entry.maxPages,
    }, [copy.buffer]);
    return done.exports ?? [];
  }

  async load(wasm: Uint8Array, options: LoadOptions): Promise<AgentPlugin> {
    if (this.#closed) throw new Error("Sandbox is closed");
    const grants = grantsSchema.parse(options.grants ?? {});
    const limits = limitsSchema.parse(options.limits ?? {});
    const module = await compileModule(wasm);
    const info = describeModule(module, await sha256Hex(wasm), wasm.length);
    checkLoadable(info, grants);
    const maxPages = limits.memory_mb * 16;
    const bytes = await instrumentCached(
      wasm,
      { maxPages },
      join(this.options.stateDir, INSTRUMENT_CACHE_DIR),
    );
    const key = this.nextId();
    const abort = new AbortController();
    const entry: PluginEntry = {
      key,
      name: options.name,
      bytes,
      hostFunctions: info.hostFunctions,
      maxPages,
      thread: this.#pickThread(),
      abort,
      ctx: {
        agent: options.name,
        grants,
        services: this.options.services,
        logger: this.logger,
        state: this.state,
        signal: abort.signal,
        deadline: 0,
      },
    };
    this.entries.set(key, entry);
    entry.thread.plugins.add(key);
    let exports: string[];
    try {
      exports = await this.loadInto(entry);
    } catch (err) {
      this.entries.delete(key);
      entry.thread.plugins.delete(key);
      throw err;
    }
    return new PluginHandle(this, entry, info, limits, new Set(exports));
  }

  unload(entry: PluginEntry): Promise<void> {
    entry.abort.abort();
    this.entries.delete(entry.key);
    entry.thread.plugins.delete(entry.key);
    if (entry.thread.dead) return Promise.resolve();
    return entry.thread.message({ t: "unload", id: this.nextId(), key: entry.key }).then(
      () => {},
      () => {},
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const e of this.entries.values()) e.abort.abort();
    this.entries.clear();
    for (const t of this.threads) t.kill(new SandboxError("trap", "Sandbox closed"));
    this.#state?.close();
    this.#state = null;
    await Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class PluginHandle implements AgentPlugin {
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(
    private readonly sandbox: SandboxImpl,
    private readonly entry: PluginEntry,
    readonly info: ModuleInfo,
    readonly limits: Limits,
    private readonly exportSet: Set<string>,
  ) {}

  get name(): string {
    return this.entry.name;
  }

  has(fn: string): boolean {
    return this.exportSet.has(fn);
  }

  call(fn: string, input?: Uint8Array | string): Promise<Uint8Array> {
    const run = this.#queue.then(() => this.#callNow(fn, input), () => this.#callNow(fn, input));
    this.#queue = run.catch(() => {});
    return run;
  }

  async callJson<T = unknown>(fn: string, input?: unknown): Promise<T> {
    const out = await this.call(fn, input === undefined ? undefined : JSON.stringify(input));
    if (out.length === 0) return null as T;
    const text = new TextDecoder().decode(out);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new PluginError(`Output of "${fn}" is not JSON: ${text.slice(0, 200)}`);
    }
  }

  async #callNow(fn: string, input?: Uint8Array | string): Promise<Uint8Array> {
    if (this.#closed) throw new Error(`Plugin "${this.name}" is closed`);
    if (!this.exportSet.has(fn)) {
      throw new TypeError(`Plugin "${this.name}" does not export function: "${fn}"`);
    }
    const bytes = input === undefined
      ? null
      : typeof input === "string"
      ? encoder.encode(input)
      : input.slice();
    const limits = this.limits;
    const deadline = Date.now() + limits.timeout_ms;
    // One controller per call: aborted when the call ends (a host function still running
    // for an abandoned call, e.g. a child process, is stopped) or the plugin is unloaded.
    const callAbort = new AbortController();
    const entry = this.entry;
    entry.abort = callAbort;
    entry.ctx = { ...entry.ctx, deadline, signal: callAbort.signal };
    const thread = entry.thread;
    try {
      return await thread.call(
        {
          key: entry.key,
          fn,
          fuel: limits.fuel,
          deadline,
          outputMax: limits.output_max_bytes,
          memBytes: limits.memory_mb * 1024 * 1024,
        },
        bytes,
        limits.timeout_ms + WATCHDOG_GRACE_MS,
      );
    } finally {
      callAbort.abort();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    await this.sandbox.unload(this.entry);
  }
}

/**
 * Creates a sandbox: `threads` runtime threads (default 1) hosting the plugins it loads.
 *
 * @example
 * ```ts
 * await using sandbox = await createSandbox({ stateDir: "/var/lib/mr", services, logger });
 * const agent = await sandbox.load(wasm, { name: "disk-watch", grants, limits });
 * const result = await agent.callJson("mr_reconcile", { trigger: { kind: "start" } });
 * ```
 */
export function createSandbox(options: SandboxOptions): Promise<Sandbox> {
  return Promise.resolve(new SandboxImpl(options));
}
