/**
 * The Extism kernel functions the JS SDK leaves unwired or disabled, as Extism defines
 * them: `config_get` (the agent's `config`), `var_get`/`var_set` (per-plugin variables kept
 * across calls, capped in bytes), `log_*` and `get_log_level`, `http_request` /
 * `http_status_code` / `http_headers` (served by the `mr_http` host function, so under the
 * `http` grant with its host:port rule and response cap), and `output_set` (kept here so
 * a `proc_exit` still returns the output set so far). The rest of the kernel (memory
 * blocks, input, error_set) is the SDK's.
 *
 * @module
 */
import type { CallContext } from "@extism/extism";

const encoder = new TextEncoder();

/** A failure of the call that leaves the plugin healthy (no re-instantiation). */
export class GuestFailure extends Error {
  override name = "GuestFailure";
  constructor(
    readonly code: "plugin_error" | "capability_denied" | "timeout",
    message: string,
  ) {
    super(message);
  }
}

/** Log levels of the kernel. */
export type KernelLevel = "debug" | "info" | "warn" | "error";

/** What the kernel needs from the runtime. */
export interface KernelHooks {
  log(level: KernelLevel, msg: string, fields?: Record<string, unknown>): void;
  /** Runs a host function synchronously (JSON text in and out). */
  hostCall(fn: string, input: string): string;
}

/** Per-plugin kernel state: kept across calls and re-instantiations, dropped on reload. */
export class KernelState {
  readonly vars = new Map<string, Uint8Array>();
  varBytes = 0;
  lastStatus = 0;
  lastHeaders: Record<string, string> = {};
  /** The block the current call set as its output. */
  output: { ctx: CallContext; addr: bigint; len: bigint } | null = null;

  constructor(readonly config: Readonly<Record<string, string>>, readonly varMaxBytes: number) {}

  /** The output set so far in this call (for `proc_exit`). */
  outputSoFar(): Uint8Array {
    if (!this.output) return new Uint8Array();
    const b = this.output.ctx.read(this.output.addr)?.bytes();
    return b ? b.slice(0, Number(this.output.len)) : new Uint8Array();
  }
}

type KernelFn = (ctx: CallContext, ...a: bigint[]) => bigint | number | void;

/** The kernel overrides for `extism:host/env`. */
export function kernelFunctions(st: KernelState, hooks: KernelHooks): Record<string, KernelFn> {
  const text = (ctx: CallContext, addr: bigint): string | null =>
    addr === 0n ? null : ctx.read(addr)?.text() ?? null;
  const logAt = (level: KernelLevel) => (ctx: CallContext, addr: bigint) => {
    const msg = text(ctx, addr);
    if (msg !== null) hooks.log(level, msg);
  };
  return {
    // the output is kept here, not in the SDK's call stack, so that a call ended by
    // proc_exit still returns it; the runtime reads it with `outputSoFar()`
    output_set: (ctx, addr, len) => {
      const size = ctx.length(addr);
      if (size === 0n && len !== 0n || len > size || len < 0n) {
        throw new GuestFailure("plugin_error", `output_set: bad block ${addr} (length ${len})`);
      }
      st.output = { ctx, addr, len };
    },
    config_get: (ctx, addr) => {
      const key = text(ctx, addr);
      if (key === null || !Object.hasOwn(st.config, key)) return 0n;
      return ctx.store(st.config[key]!);
    },
    var_get: (ctx, addr) => {
      const key = text(ctx, addr);
      const v = key === null ? undefined : st.vars.get(key);
      return v ? ctx.store(v.slice()) : 0n;
    },
    var_set: (ctx, addr, valueAddr) => {
      const key = text(ctx, addr);
      if (key === null) return;
      const old = st.vars.get(key);
      const oldBytes = old ? old.length + encoder.encode(key).length : 0;
      if (valueAddr === 0n) {
        st.vars.delete(key);
        st.varBytes -= oldBytes;
        return;
      }
      const value = ctx.read(valueAddr)?.bytes();
      if (!value) return;
      const next = st.varBytes - oldBytes + value.length + encoder.encode(key).length;
      if (next > st.varMaxBytes) {
        throw new GuestFailure(
          "plugin_error",
          `var_set("${
            key.slice(0, 100)
          }"): plugin variables would take ${next} bytes, the cap is ${st.varMaxBytes}`,
        );
      }
      st.vars.set(key, value.slice());
      st.varBytes = next;
    },
    log_debug: logAt("debug"),
    log_trace: logAt("debug"),
    log_info: logAt("info"),
    log_warn: logAt("warn"),
    log_error: logAt("error"),
    // Extism levels: trace 0, debug 1, info 2, warn 3, error 4; debug and up are kept
    get_log_level: () => 1,
    http_request: (ctx, reqAddr, bodyAddr) => {
      const raw = text(ctx, reqAddr);
      let req: { url?: unknown; method?: unknown; headers?: unknown; header?: unknown };
      try {
        req = JSON.parse(raw ?? "");
      } catch {
        throw new GuestFailure("plugin_error", "http_request: the request is not JSON");
      }
      if (typeof req.url !== "string") {
        throw new GuestFailure("plugin_error", 'http_request: the request has no "url"');
      }
      const method = typeof req.method === "string" ? req.method.toUpperCase() : "GET";
      const headers = req.headers ?? req.header;
      const body = bodyAddr !== 0n && method !== "GET" && method !== "HEAD"
        ? text(ctx, bodyAddr)
        : null;
      const reply = JSON.parse(hooks.hostCall(
        "mr_http",
        JSON.stringify({
          url: req.url,
          method,
          ...(headers && typeof headers === "object" ? { headers } : {}),
          ...(body !== null ? { body } : {}),
        }),
      )) as {
        status?: number;
        headers?: Record<string, string>;
        body?: string;
        error?: { code: string; message: string };
      };
      if (reply.error) {
        st.lastStatus = 0;
        const code = reply.error.code === "capability_denied"
          ? "capability_denied"
          : reply.error.code === "timeout"
          ? "timeout"
          : "plugin_error";
        throw new GuestFailure(code, `http_request to ${req.url}: ${reply.error.message}`);
      }
      st.lastStatus = reply.status ?? 0;
      st.lastHeaders = reply.headers ?? {};
      return reply.body ? ctx.store(reply.body) : 0n;
    },
    http_status_code: () => st.lastStatus,
    http_headers: (ctx) => ctx.store(JSON.stringify(st.lastHeaders)),
  };
}

/** Kernel functions this runtime provides (the SDK's plus the overrides above). */
export const KERNEL_FUNCTION_NAMES: readonly string[] = [
  "alloc",
  "free",
  "load_u8",
  "load_u64",
  "store_u8",
  "store_u64",
  "input_offset",
  "input_length",
  "input_load_u8",
  "input_load_u64",
  "output_set",
  "error_set",
  "config_get",
  "var_get",
  "var_set",
  "http_request",
  "http_status_code",
  "http_headers",
  "length",
  "length_unsafe",
  "log_trace",
  "log_debug",
  "log_info",
  "log_warn",
  "log_error",
  "get_log_level",
];
