/**
 * Main-thread implementations of the ABI v1 host functions: argument checks against the
 * grant, then the work (SQLite state, exec, http, files) or a {@linkcode HostServices}
 * call. Every function takes and returns JSON; failures become
 * `{"error":{"code","message"}}` objects for the plugin, never exceptions.
 *
 * @module
 */
import type { Grants } from "../desired/spec.ts";
import type { HostServices } from "../host/services.ts";
import type { Logger } from "../log/logger.ts";
import { resolve } from "node:path";
import { matchesAny, realPathFor } from "./paths.ts";
import type { StateStore } from "./state.ts";

/** Codes a host function returns to the plugin (ABI.md "Error codes"). */
export const HostErrorCode = {
  CapabilityDenied: "capability_denied",
  InvalidInput: "invalid_input",
  NotFound: "not_found",
  IoError: "io_error",
  Timeout: "timeout",
  Unavailable: "unavailable",
} as const;
/** One of {@linkcode HostErrorCode}. */
export type HostErrorCode = typeof HostErrorCode[keyof typeof HostErrorCode];

/** A refusal or failure a host function reports to the plugin as an error object. */
export class HostCallError extends Error {
  override name = "HostCallError";
  constructor(readonly code: HostErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Largest stdout/stderr/body/file content handed to a plugin. */
export const HOST_OUTPUT_CAP = 1024 * 1024;

/** What a host call knows about its caller. */
export interface HostCallContext {
  agent: string;
  grants: Grants;
  services: HostServices;
  logger: Logger;
  state: () => StateStore;
  /** Aborted when the calling export's deadline passes. */
  signal: AbortSignal;
  /** Epoch ms deadline of the calling export. */
  deadline: number;
}

type Json = Record<string, unknown>;

function obj(input: string): Json {
  let v: unknown;
  try {
    v = input === "" ? {} : JSON.parse(input);
  } catch {
    throw new HostCallError("invalid_input", "Input is not JSON");
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) {
    throw new HostCallError("invalid_input", "Input must be a JSON object");
  }
  return v as Json;
}

function str(v: Json, field: string): string {
  const s = v[field];
  if (typeof s !== "string" || s === "") {
    throw new HostCallError("invalid_input", `Field "${field}" must be a non-empty string`);
  }
  return s;
}

function optNum(v: Json, field: string): number | undefined {
  const n = v[field];
  if (n === undefined) return undefined;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) {
    throw new HostCallError("invalid_input", `Field "${field}" must be a non-negative number`);
  }
  return n;
}

function deny(ctx: HostCallContext, fn: string, message: string, detail: Json): never {
  ctx.logger.audit("capability denied", { agent: ctx.agent, host_function: fn, ...detail });
  throw new HostCallError("capability_denied", message);
}

/** Matches a KV key against NATS-token patterns (`*` one token, `>` the rest). */
export function kvKeyAllowed(key: string, patterns: readonly string[]): boolean {
  const toks = key.split(".");
  return patterns.some((p) => {
    const pt = p.split(".");
    for (let i = 0; i < pt.length; i++) {
      if (pt[i] === ">") return toks.length > i;
      if (i >= toks.length) return false;
      if (pt[i] !== "*" && pt[i] !== toks[i]) return false;
    }
    return pt.length === toks.length;
  });
}

function remainingMs(ctx: HostCallContext, requested?: number): number {
  const left = Math.max(1, ctx.deadline - Date.now());
  return requested === undefined ? left : Math.min(left, Math.max(1, requested));
}

async function readCapped(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  if (!stream) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (total < HOST_OUTPUT_CAP) chunks.push(value.subarray(0, HOST_OUTPUT_CAP - total));
      total += value.length;
    }
  } finally {
    reader.releaseLock();
  }
  const buf = new Uint8Array(Math.min(total, HOST_OUTPUT_CAP));
  let off = 0;
  for (const c of chunks) {
    buf.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(buf);
}

async function exec(ctx: HostCallContext, v: Json): Promise<Json> {
  const argv = v["argv"];
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === "string")) {
    throw new HostCallError("invalid_input", 'Field "argv" must be a non-empty string array');
  }
  const allowed = ctx.grants.exec.some((g) =>
    g.length === argv.length && g.every((a, i) => a === argv[i])
  );
  if (!allowed) {
    deny(ctx, "mr_exec", `Command not granted: ${JSON.stringify(argv)}`, { argv });
  }
  const stdin = v["stdin"];
  const timeout = remainingMs(ctx, optNum(v, "timeout_ms"));
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeout)]);
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0] as string, {
      args: argv.slice(1) as string[],
      stdin: typeof stdin === "string" ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).spawn();
  } catch (err) {
    const code = err instanceof Deno.errors.NotFound ? "not_found" : "io_error";
    throw new HostCallError(code, `Cannot run "${argv[0]}": ${(err as Error).message}`);
  }
  if (typeof stdin === "string" && child.stdin) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin)).catch(() => {});
    await w.close().catch(() => {});
  }
  const [stdout, stderr, status] = await Promise.all([
    readCapped(child.stdout),
    readCapped(child.stderr),
    child.status,
  ]);
  if (signal.aborted) {
    throw new HostCallError("timeout", `Command "${argv[0]}" timed out after ${timeout} ms`);
  }
  return { code: status.code, stdout, stderr };
}

async function http(ctx: HostCallContext, v: Json): Promise<Json> {
  let url: URL;
  try {
    url = new URL(str(v, "url"));
  } catch (err) {
    if (err instanceof HostCallError) throw err;
    throw new HostCallError("invalid_input", `Invalid URL: "${v["url"]}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new HostCallError("invalid_input", `Unsupported URL scheme: "${url.protocol}"`);
  }
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  const hostPort = `${url.hostname}:${port}`;
  if (!ctx.grants.http.includes(hostPort)) {
    deny(ctx, "mr_http", `Host not granted: "${hostPort}"`, { host: hostPort });
  }
  const timeout = remainingMs(ctx, optNum(v, "timeout_ms"));
  const method = typeof v["method"] === "string" ? v["method"] : "GET";
  const headers = v["headers"] && typeof v["headers"] === "object"
    ? v["headers"] as Record<string, string>
    : {};
  const started = performance.now();
  try {
    const res = await fetch(url, {
      method,
      headers,
      ...(typeof v["body"] === "string" ? { body: v["body"] } : {}),
      redirect: "manual",
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(timeout)]),
    });
    const body = await readCapped(res.body);
    return {
      status: res.status,
      headers: Object.fromEntries(res.headers),
      body,
      ms: Math.round(performance.now() - started),
    };
  } catch (err) {
    if (err instanceof DOMException && (err.name === "TimeoutError" || err.name === "AbortError")) {
      throw new HostCallError("timeout", `Request to "${hostPort}" timed out after ${timeout} ms`);
    }
    throw new HostCallError(
      "io_error",
      `Request to "${hostPort}" failed: ${(err as Error).message}`,
    );
  }
}

async function fileRead(ctx: HostCallContext, v: Json): Promise<Json> {
  const path = str(v, "path");
  let real: string;
  try {
    real = await realPathFor(path, false);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      // Do not reveal existence outside the grant: check the lexical path first.
      if (!matchesAny(resolve(path), ctx.grants.files.read)) {
        deny(ctx, "mr_file_read", `Path not granted: "${path}"`, { path });
      }
      throw new HostCallError("not_found", `No such file: "${path}"`);
    }
    throw new HostCallError("io_error", `Cannot resolve "${path}": ${(err as Error).message}`);
  }
  if (!matchesAny(real, ctx.grants.files.read)) {
    deny(ctx, "mr_file_read", `Path not granted: "${path}" (resolves to "${real}")`, {
      path,
      resolved: real,
    });
  }
  try {
    const st = await Deno.stat(real);
    if (st.size > HOST_OUTPUT_CAP) {
      throw new HostCallError(
        "io_error",
        `File is larger than ${HOST_OUTPUT_CAP} bytes: "${path}"`,
      );
    }
    return { content: await Deno.readTextFile(real) };
  } catch (err) {
    if (err instanceof HostCallError) throw err;
    throw new HostCallError("io_error", `Cannot read "${path}": ${(err as Error).message}`);
  }
}

async function fileWrite(ctx: HostCallContext, v: Json): Promise<Json> {
  const path = str(v, "path");
  const content = v["content"];
  if (typeof content !== "string") {
    throw new HostCallError("invalid_input", 'Field "content" must be a string');
  }
  let real: string;
  try {
    real = await realPathFor(path, true);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new HostCallError("not_found", `No such directory for "${path}"`);
    }
    throw new HostCallError("io_error", `Cannot resolve "${path}": ${(err as Error).message}`);
  }
  if (!matchesAny(real, ctx.grants.files.write)) {
    deny(ctx, "mr_file_write", `Path not granted: "${path}" (resolves to "${real}")`, {
      path,
      resolved: real,
    });
  }
  try {
    await Deno.writeTextFile(real, content, { append: v["append"] === true });
    return { bytes: new TextEncoder().encode(content).length };
  } catch (err) {
    throw new HostCallError("io_error", `Cannot write "${path}": ${(err as Error).message}`);
  }
}

function getPath(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split(".")) {
    if (!cur || typeof cur !== "object") return null;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur ?? null;
}

/** Runs host function `fn` for the plugin; always resolves with JSON text. */
export async function runHostFunction(
  ctx: HostCallContext,
  fn: string,
  input: string,
): Promise<string> {
  try {
    const out = await dispatch(ctx, fn, input);
    return JSON.stringify(out ?? {});
  } catch (err) {
    const e = err instanceof HostCallError
      ? err
      : new HostCallError("io_error", err instanceof Error ? err.message : String(err));
    if (!(err instanceof HostCallError)) {
      ctx.logger.warn("host function failed", { agent: ctx.agent, host_function: fn, err });
    }
    return JSON.stringify({ error: { code: e.code, message: e.message } });
  }
}

async function dispatch(ctx: HostCallContext, fn: string, input: string): Promise<unknown> {
  const v = obj(input);
  const s = ctx.services;
  const g = ctx.grants;
  switch (fn) {
    case "mr_log": {
      const level = ["debug", "info", "warn", "error"].includes(v["level"] as string)
        ? v["level"] as "debug"
        : "info";
      ctx.logger[level](String(v["msg"] ?? ""), { agent: ctx.agent, ...(v["fields"] ?? {}) });
      return {};
    }
    case "mr_facts": {
      if (!g.facts) deny(ctx, fn, "Facts are not granted", {});
      const facts = await s.facts(ctx.agent);
      return typeof v["path"] === "string" ? { value: getPath(facts, v["path"]) } : { facts };
    }
    case "mr_event":
      if (!g.events) deny(ctx, fn, "Events are not granted", {});
      return await s.event(ctx.agent, {
        type: str(v, "type"),
        ...(v["data"] !== undefined ? { data: v["data"] } : {}),
        ...(typeof v["subject"] === "string" ? { subject: v["subject"] } : {}),
      });
    case "mr_submit": {
      const subject = str(v, "subject");
      if (!g.submit.includes(subject)) {
        deny(ctx, fn, `Submission subject not granted: "${subject}"`, { subject });
      }
      const priority = optNum(v, "priority");
      if (priority !== undefined && (priority > 4 || !Number.isInteger(priority))) {
        throw new HostCallError("invalid_input", 'Field "priority" must be an integer 0-4');
      }
      return await s.submit(ctx.agent, {
        subject,
        payload: v["payload"] ?? null,
        ...(priority !== undefined ? { priority } : {}),
        ...(typeof v["ttl"] === "string" ? { ttl: v["ttl"] } : {}),
      });
    }
    case "mr_metric": {
      if (!g.metrics) deny(ctx, fn, "Metrics are not granted", {});
      const value = v["value"];
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw new HostCallError("invalid_input", 'Field "value" must be a finite number');
      }
      const kind = v["kind"] === "counter" ? "counter" : "gauge";
      await s.metric(ctx.agent, {
        name: str(v, "name"),
        value,
        kind,
        ...(v["labels"] && typeof v["labels"] === "object"
          ? { labels: v["labels"] as Record<string, string> }
          : {}),
      });
      return {};
    }
    case "mr_state_get":
      return { value: ctx.state().get(ctx.agent, str(v, "key")) };
    case "mr_state_put":
      ctx.state().put(ctx.agent, str(v, "key"), v["value"] ?? null);
      return {};
    case "mr_kv_get": {
      const key = str(v, "key");
      if (!kvKeyAllowed(key, g.kv_read)) deny(ctx, fn, `KV key not granted: "${key}"`, { key });
      const r = await s.kvGet(ctx.agent, key);
      return r ?? { value: null, revision: 0 };
    }
    case "mr_governor": {
      const name = str(v, "name");
      if (!g.governors.includes(name)) {
        deny(ctx, fn, `Governor not granted: "${name}"`, { governor: name });
      }
      const action = v["action"];
      if (action !== "acquire" && action !== "release") {
        throw new HostCallError("invalid_input", 'Field "action" must be "acquire" or "release"');
      }
      const t = optNum(v, "timeout_ms");
      return await s.governor(ctx.agent, {
        name,
        action,
        ...(t !== undefined ? { timeout_ms: Math.min(t, remainingMs(ctx)) } : {}),
      });
    }
    case "mr_is_leader":
      return { leader: await s.isLeader(ctx.agent) };
    case "mr_transition":
      return await s.transition(ctx.agent, {
        from: str(v, "from"),
        to: str(v, "to"),
        ...(typeof v["reason"] === "string" ? { reason: v["reason"] } : {}),
      });
    case "mr_exec":
      return await exec(ctx, v);
    case "mr_http":
      return await http(ctx, v);
    case "mr_file_read":
      return await fileRead(ctx, v);
    case "mr_file_write":
      return await fileWrite(ctx, v);
    default:
      throw new HostCallError("not_found", `Unknown host function: "${fn}"`);
  }
}
