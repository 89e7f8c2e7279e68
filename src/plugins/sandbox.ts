/**
 * The sandbox: a pool of sandbox host processes (default one) hosting many instrumented
 * plugins. Host functions are answered here, in the daemon. A call that does not stop by
 * its deadline plus a grace period gets its process killed; the process is restarted and
 * its other plugins reloaded; an agent killed repeatedly is quarantined.
 *
 * @module
 */
import { join } from "node:path";
import { grantsSchema, limitsSchema } from "../desired/spec.ts";
import type { Logger } from "../log/logger.ts";
import { checkLoadable, compileModule, describeModule, sha256Hex } from "./abi.ts";
import { pluginLog, prepareHostContext } from "./host_functions.ts";
import { INIT_EXPORTS } from "./instrument.ts";
import { guestSetup } from "./kernel/guest.ts";
import { DEFAULT_WASI_LIMITS } from "./wasi/preview1.ts";
import { LocalFs } from "./wasi/fs_ops.ts";
import { INSTRUMENT_CACHE_DIR, instrumentCached } from "./instrument_cache.ts";
import { planMemory } from "./module_limits.ts";
import { PluginHandle } from "./plugin_handle.ts";
import { type HostProcess, HostProcessExit } from "./process/host_process.ts";
import type { FromHost } from "./protocol.ts";
import { answerHost } from "./host_answer.ts";
import { ProcessPool } from "./process_pool.ts";
export { HOST_CALLS_MAX, HOST_REPLY_BYTES_MAX } from "./pool.ts";
import { callLimits, type PluginEntry, Slot, STOP_OF, toError } from "./pool.ts";
import { Quarantine, QUARANTINE_KILLS } from "./quarantine.ts";
import { openStateStore, type StateStore } from "./state.ts";
import {
  type AgentPlugin,
  type CallStats,
  type LoadOptions,
  type Sandbox,
  SandboxError,
  type SandboxOptions,
  type SandboxProcessInfo,
} from "./types.ts";

/** Deadline of a load (compile, instantiate, start function) at the least. */
const LOAD_MIN_MS = 1_000;
/** A call that waited this long before it started is logged (with `queued_ms`). */
const QUEUE_WARN_MS = 1_000;
/** V8 old-space limit of a host process. */
const HOST_HEAP_MB = 128;

class SandboxImpl implements Sandbox {
  readonly logger: Logger;
  readonly entries = new Map<number, PluginEntry>();
  readonly slots: Slot[] = [];
  readonly #quarantine = new Quarantine();
  readonly #pool: ProcessPool;
  readonly #unmetered: Set<string>;
  #nextKey = 1;
  #state: StateStore | null = null;
  #closed = false;

  constructor(readonly options: SandboxOptions) {
    this.logger = options.logger;
    const n = Math.max(1, Math.floor(options.processes ?? options.threads ?? 1));
    for (let i = 0; i < n; i++) this.slots.push(new Slot());
    this.#pool = new ProcessPool(this.slots, {
      heapMb: HOST_HEAP_MB,
      ceilingMb: options.processMemoryMb ?? 512,
    }, {
      host: (m, input, p) => void answerHost(this.entries.get(m.key), m, input, p),
      log: (m) => this.#log(m),
      reload: async (proc, e) => {
        if (this.#quarantine.check(e)) return;
        await this.#loadEntry(proc, e).catch((err) =>
          this.logger.error("plugin reload failed", { agent: e.name, err: String(err) })
        );
      },
      closed: () => this.#closed,
      logger: options.logger,
    });
    this.#unmetered = new Set(
      (Deno.env.get("MR_SANDBOX_TEST_UNMETERED") ?? "").split(",").filter(Boolean),
    );
  }

  state = (): StateStore => {
    this.#state ??= openStateStore(this.options.stateDir);
    return this.#state;
  };

  get graceMs(): number {
    return this.options.killGraceMs ?? 500;
  }

  #log(m: Extract<FromHost, { t: "log" }>): void {
    const entry = this.entries.get(m.key);
    if (m.level === "stdout") {
      if (entry?.stdout) entry.stdout(m.msg);
      else this.logger.info(m.msg, { agent: entry?.name, stream: "stdout" });
      return;
    }
    const level = ["debug", "info", "warn", "error"].includes(m.level) ? m.level as "info" : "info";
    // the host owns the line (core keys; only the stream of WASI lines is taken from the
    // plugin's fields) and the agent's rate limit
    const stream = m.fields?.["stream"];
    if (entry) {
      pluginLog(
        entry.ctx,
        level,
        m.msg,
        undefined,
        stream === "stdout" || stream === "stderr" ? { stream } : undefined,
      );
    }
  }

  /** Runs `fn` as entry's operation in flight: a process exit becomes a stop for `entry`. */
  async #op<T>(entry: PluginEntry, deadline: number, what: string, fn: () => Promise<T>) {
    entry.op = { deadline, abort: null };
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof HostProcessExit)) throw err;
      const code = STOP_OF[err.reason];
      const stop = new SandboxError(
        code,
        `${what} of agent "${entry.name}": its sandbox process ${err.message}; ` +
          `the process was restarted`,
        { cause: err },
      );
      const kills = this.#quarantine.strike(entry, stop);
      this.logger.warn("agent stopped by its sandbox process's end", {
        agent: entry.name,
        code: stop.code,
        kills,
        quarantined: kills >= QUARANTINE_KILLS,
      });
      throw stop;
    } finally {
      entry.op?.abort?.abort();
      entry.op = null;
    }
  }

  async #loadEntry(proc: HostProcess, entry: PluginEntry): Promise<void> {
    const deadline = Date.now() + Math.max(LOAD_MIN_MS, entry.limits.timeout_ms);
    return await this.#op(entry, deadline, "Load", async () => {
      // a new instance starts with no open files
      entry.fs?.closeAll();
      entry.fs = entry.guest.wasi ? this.#guestFs(entry) : null;
      const done = await proc.request(
        {
          t: "load",
          key: entry.key,
          name: entry.name,
          hostFunctions: entry.hostFunctions,
          maxPages: entry.maxPages,
          tableBytes: entry.tableBytes,
          limits: callLimits(entry.limits, deadline),
          guest: entry.guest,
        },
        entry.bytes,
        deadline + this.graceMs,
        deadline,
      );
      if (done.header.failure) throw toError(done.header.failure);
      entry.loaded = true;
    });
  }

  #guestFs(entry: PluginEntry): LocalFs {
    return new LocalFs(
      entry.guest.wasi?.preopens ?? [],
      DEFAULT_WASI_LIMITS,
      (fn, detail) =>
        this.logger.audit("capability denied", {
          agent: entry.name,
          host_function: `wasi:${fn}`,
          ...detail,
        }),
    );
  }

  /** Runs one call of `entry` on its slot. */
  call(
    entry: PluginEntry,
    fn: string,
    input: Uint8Array | null,
    enqueued: number,
    stats: (s: CallStats) => void,
  ): Promise<Uint8Array> {
    return entry.slot.exclusive(async () => {
      const q = this.#quarantine.check(entry);
      if (q) throw q;
      const proc = await this.#pool.ensure(entry.slot);
      if (!entry.loaded) await this.#loadEntry(proc, entry);
      const started = performance.now();
      const queued = Math.round(started - enqueued);
      // the deadline starts now; a long wait (behind a neighbour, a restart) is reported apart
      if (queued >= QUEUE_WARN_MS) {
        this.logger.warn("agent call waited in the sandbox queue", {
          agent: entry.name,
          fn,
          queued_ms: queued,
        });
      }
      const deadline = Date.now() + entry.limits.timeout_ms;
      let code: string | undefined;
      try {
        return await this.#op(entry, deadline, `Call to "${fn}"`, async () => {
          const done = await proc.request(
            { t: "call", key: entry.key, fn, limits: callLimits(entry.limits, deadline) },
            input,
            deadline + this.graceMs,
            deadline,
          );
          if (done.header.failure) throw toError(done.header.failure);
          return done.body;
        });
      } catch (err) {
        code = (err as { code?: string }).code ?? "error";
        throw err;
      } finally {
        stats({
          fn,
          queued_ms: queued,
          run_ms: Math.round(performance.now() - started),
          ...(code ? { code } : {}),
        });
      }
    });
  }

  async load(wasm: Uint8Array, options: LoadOptions): Promise<AgentPlugin> {
    if (this.#closed) throw new Error("Sandbox is closed");
    const grants = grantsSchema.parse(options.grants ?? {});
    const limits = limitsSchema.parse(options.limits ?? {});
    const module = await compileModule(wasm);
    const info = describeModule(module, await sha256Hex(wasm), wasm.length, wasm);
    checkLoadable(info, grants);
    const q = this.#quarantine.check({ name: options.name, sha256: info.sha256 });
    if (q) throw q;
    const plan = planMemory(wasm, limits.memory_mb * 1024 * 1024);
    const unmetered = options.unmetered === true || this.#unmetered.has(options.name);
    // unmetered (test only): not instrumented at all, so only the kill boundary stops it
    const bytes = unmetered ? plan.bytes : await instrumentCached(
      plan.bytes,
      { maxPages: plan.maxPages },
      join(this.options.stateDir, INSTRUMENT_CACHE_DIR),
    );
    const slot = this.slots.reduce((a, b) => (b.entries.size < a.entries.size ? b : a));
    const entry: PluginEntry = {
      key: this.#nextKey++,
      name: options.name,
      sha256: info.sha256,
      bytes,
      hostFunctions: info.hostFunctions,
      maxPages: plan.maxPages,
      tableBytes: plan.tableBytes,
      limits,
      slot,
      loaded: false,
      op: null,
      guest: guestSetup(
        options.name,
        grants,
        options.config ?? null,
        info.wasiFunctions.length > 0,
        options.stdout ? "pass" : "log",
      ),
      fs: null,
      ...(options.stdout ? { stdout: options.stdout } : {}),
      ctx: prepareHostContext({
        agent: options.name,
        grants,
        services: this.options.services,
        logger: this.logger,
        state: this.state,
        signal: new AbortController().signal,
        deadline: 0,
      }),
    };
    this.entries.set(entry.key, entry);
    try {
      await slot.exclusive(async () => {
        await this.#loadEntry(await this.#pool.ensure(slot), entry);
        slot.entries.add(entry); // from now on reloaded with the slot's process
      });
    } catch (err) {
      this.entries.delete(entry.key);
      throw err;
    }
    // the instrumenter runs _initialize/hs_init itself, at the first call (not exported)
    const exports = WebAssembly.Module.exports(module).filter((e) =>
      e.kind === "function" && (unmetered || !INIT_EXPORTS.includes(e.name))
    );
    return new PluginHandle(this, entry, info, limits, new Set(exports.map((e) => e.name)));
  }

  unload(entry: PluginEntry): Promise<void> {
    this.entries.delete(entry.key);
    entry.fs?.closeAll();
    entry.fs = null;
    entry.slot.entries.delete(entry);
    return entry.slot.exclusive(async () => {
      const proc = entry.slot.proc;
      if (!proc || proc.dead || !entry.loaded) return;
      entry.loaded = false;
      await proc.request({ t: "unload", key: entry.key }, null, Date.now() + 5_000);
    }).catch(() => {});
  }

  processes(): SandboxProcessInfo[] {
    return this.#pool.processes();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const e of this.entries.values()) e.op?.abort?.abort();
    this.entries.clear();
    await this.#pool.close();
    this.#state?.close();
    this.#state = null;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export type { SandboxImpl };

/**
 * Creates a sandbox: `processes` sandbox host processes (default 1, started on the first
 * load) hosting the plugins it loads.
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
