/**
 * ABI v1 host functions, each described once: name, the grant it needs (`allowed`, used
 * at load by abi.ts and again on every call), its input schema (zod), its documentation
 * (plugins-sdk/ABI.md's table is generated from this) and `run`. The run-time dispatcher
 * is host_functions.ts.
 *
 * @module
 */
import { z } from "zod";
import type { Grants } from "../../desired/spec.ts";
import { execGrantsOf, type HostCallContext } from "./context.ts";
import { HostCallError } from "./errors.ts";
import { deny, jsonBytes, maxBytes, remainingMs } from "./checks.ts";
import { runGrantedExec } from "./exec.ts";
import { readGrantedFile, writeGrantedFile } from "./files.ts";
import { httpRequest } from "./http.ts";
import { kvKeyAllowed } from "./kv.ts";
import { agentLogFor } from "./log.ts";
import * as L from "./limits.ts";
import { StateQuotaError } from "../state.ts";

/** One host function. */
export interface HostFunction<S extends z.ZodType = z.ZodType> {
  name: string;
  /** The grant it needs, as ABI.md says it. */
  grant: string;
  /** Whether `grants` allow importing (load) and calling (run) it at all. */
  allowed(g: Grants): boolean;
  input: S;
  /** ABI.md: input and output examples. */
  inputDoc: string;
  outputDoc: string;
  run(ctx: HostCallContext, input: z.output<S>): Promise<unknown> | unknown;
}

function define<S extends z.ZodType>(f: HostFunction<S>): HostFunction {
  return f as unknown as HostFunction;
}

const name = z.string().min(1);
const timeoutMs = z.number().finite().nonnegative().optional();

function getPath(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split(".")) {
    if (!cur || typeof cur !== "object") return null;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur ?? null;
}

const fileCtx = (ctx: HostCallContext, fn: string, globs: readonly string[], path: string) => ({
  globs,
  deadline: ctx.deadline,
  signal: ctx.signal,
  deny: (detail: Record<string, unknown>): never =>
    deny(ctx, fn, `Path not granted: "${path}"`, detail),
});

/** Every host function of ABI v1, in ABI.md order. */
export const HOST_FUNCTION_TABLE: readonly HostFunction[] = [
  define({
    name: "mr_log",
    grant: "none",
    allowed: () => true,
    input: z.object({
      level: z.string().optional(),
      msg: z.unknown().optional(),
      fields: z.record(z.string(), z.unknown()).optional(),
    }),
    inputDoc: '`{"level":"debug\\|info\\|warn\\|error","msg":"…","fields"?:{}}`',
    outputDoc: "`{}`",
    run(ctx, v) {
      maxBytes("mr_log fields", jsonBytes(v.fields ?? {}), L.MAX_LOG_FIELDS_BYTES);
      const ok = agentLogFor(ctx).write(
        ctx.agent,
        v.level ?? "info",
        String(v.msg ?? ""),
        v.fields,
      );
      if (!ok) throw new HostCallError("rate_limited", "Log rate exceeded; the line was dropped");
      return {};
    },
  }),
  define({
    name: "mr_facts",
    grant: "`facts: true`",
    allowed: (g) => g.facts,
    input: z.object({ path: z.string().optional() }),
    inputDoc: '`{}` or `{"path":"cpu.cores"}`',
    outputDoc: '`{"facts":{…}}` or `{"value":…}`',
    async run(ctx, v) {
      const facts = await ctx.services.facts(ctx.agent);
      return v.path !== undefined ? { value: getPath(facts, v.path) } : { facts };
    },
  }),
  define({
    name: "mr_event",
    grant: "`events: true`",
    allowed: (g) => g.events,
    input: z.object({ type: name, data: z.unknown().optional(), subject: z.string().optional() }),
    inputDoc: '`{"type":"alarm.raised","data"?:…,"subject"?:"…"}`',
    outputDoc: '`{"id":"<ulid>"}`',
    run(ctx, v) {
      maxBytes("mr_event data", jsonBytes(v.data ?? null), L.MAX_EVENT_DATA_BYTES);
      return ctx.services.event(ctx.agent, {
        type: v.type,
        ...(v.data !== undefined ? { data: v.data } : {}),
        ...(v.subject !== undefined ? { subject: v.subject } : {}),
      });
    },
  }),
  define({
    name: "mr_submit",
    grant: "subject in `submit`",
    allowed: (g) => g.submit.length > 0,
    input: z.object({
      subject: name,
      payload: z.unknown().optional(),
      priority: z.number().int().min(0).max(4).optional(),
      ttl: z.string().optional(),
    }),
    inputDoc: '`{"subject":"orders","payload":…,"priority"?:0-4,"ttl"?:"7d"}`',
    outputDoc: `\`{"id":"<ulid>","priority":n}\` (priority clamped to ${L.AGENT_MIN_PRIORITY}..4)`,
    async run(ctx, v) {
      if (!ctx.grants.submit.includes(v.subject)) {
        deny(ctx, "mr_submit", `Submission subject not granted: "${v.subject}"`, {
          subject: v.subject,
        });
      }
      maxBytes("mr_submit payload", jsonBytes(v.payload ?? null), L.MAX_SUBMIT_PAYLOAD_BYTES);
      // agents never outrank lifecycle events
      const priority = Math.max(L.AGENT_MIN_PRIORITY, v.priority ?? L.AGENT_MIN_PRIORITY);
      const r = await ctx.services.submit(ctx.agent, {
        subject: v.subject,
        payload: v.payload ?? null,
        priority,
        ...(v.ttl !== undefined ? { ttl: v.ttl } : {}),
      });
      return { ...r, priority };
    },
  }),
  define({
    name: "mr_metric",
    grant: "`metrics: true`",
    allowed: (g) => g.metrics,
    input: z.object({
      name,
      value: z.number().finite(),
      kind: z.enum(["gauge", "counter"]).optional(),
      labels: z.record(z.string(), z.string()).optional(),
    }),
    inputDoc: '`{"name":"probe_ms","value":12.5,"labels"?:{},"kind"?:"gauge\\|counter"}`',
    outputDoc: "`{}`",
    async run(ctx, v) {
      const n = Object.keys(v.labels ?? {}).length;
      if (n > L.MAX_METRIC_LABELS) {
        throw new HostCallError(
          "payload_too_large",
          `mr_metric has ${n} labels, more than ${L.MAX_METRIC_LABELS}`,
        );
      }
      maxBytes("mr_metric sample", jsonBytes([v.name, v.labels ?? {}]), L.MAX_METRIC_BYTES);
      await ctx.services.metric(ctx.agent, {
        name: v.name,
        value: v.value,
        kind: v.kind ?? "gauge",
        ...(v.labels ? { labels: v.labels } : {}),
      });
      return {};
    },
  }),
  define({
    name: "mr_state_get",
    grant: "none (agent-private)",
    allowed: () => true,
    input: z.object({ key: name }),
    inputDoc: '`{"key":"k"}`',
    outputDoc: '`{"value":… \\| null}`',
    run: (ctx, v) => ({ value: ctx.state().get(ctx.agent, v.key) }),
  }),
  define({
    name: "mr_state_put",
    grant: "none (agent-private)",
    allowed: () => true,
    input: z.object({ key: name, value: z.unknown().optional() }),
    inputDoc: '`{"key":"k","value":…}` (`null` deletes)',
    outputDoc: "`{}`",
    run(ctx, v) {
      maxBytes("mr_state_put key", new TextEncoder().encode(v.key).length, L.MAX_STATE_KEY_BYTES);
      maxBytes("mr_state_put value", jsonBytes(v.value ?? null), L.MAX_STATE_VALUE_BYTES);
      try {
        ctx.state().put(ctx.agent, v.key, v.value ?? null, {
          maxKeys: L.STATE_QUOTA_KEYS,
          maxBytes: L.STATE_QUOTA_BYTES,
        });
      } catch (err) {
        if (err instanceof StateQuotaError) throw new HostCallError("quota_exceeded", err.message);
        throw err;
      }
      return {};
    },
  }),
  define({
    name: "mr_kv_get",
    grant: "key matches `kv_read`",
    allowed: (g) => g.kv_read.length > 0,
    input: z.object({ key: name }),
    inputDoc: '`{"key":"shared.limits"}`',
    outputDoc: '`{"value":… \\| null,"revision":n}`',
    async run(ctx, v) {
      if (!kvKeyAllowed(v.key, ctx.grants.kv_read)) {
        deny(ctx, "mr_kv_get", `KV key not granted: "${v.key}"`, { key: v.key });
      }
      return (await ctx.services.kvGet(ctx.agent, v.key)) ?? { value: null, revision: 0 };
    },
  }),
  define({
    name: "mr_exec",
    grant: "argv exactly in `exec`",
    allowed: (g) => g.exec.length > 0,
    input: z.object({
      argv: z.array(z.string()).min(1),
      timeout_ms: timeoutMs,
      stdin: z.string().optional(),
    }),
    inputDoc: '`{"argv":["systemctl","is-active","nginx"],"timeout_ms"?:n,"stdin"?:"…"}`',
    outputDoc: '`{"code":0,"stdout":"…","stderr":"…"}`',
    run(ctx, v) {
      const entry = execGrantsOf(ctx).find((g) =>
        g.argv.length === v.argv.length && g.argv.every((a, i) => a === v.argv[i])
      );
      if (!entry) {
        deny(ctx, "mr_exec", `Command not granted: ${JSON.stringify(v.argv)}`, { argv: v.argv });
      }
      const timeout = remainingMs(ctx, v.timeout_ms);
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeout)]);
      return runGrantedExec(entry, v.stdin, signal, timeout);
    },
  }),
  define({
    name: "mr_http",
    grant: "`host:port` in `http`",
    allowed: (g) => g.http.length > 0,
    input: z.object({
      url: name,
      method: z.string().optional(),
      headers: z.record(z.string(), z.string()).optional(),
      body: z.string().optional(),
      timeout_ms: timeoutMs,
    }),
    inputDoc:
      '`{"url":"https://h:443/p","method"?:"GET","headers"?:{},"body"?:"…","timeout_ms"?:n}`',
    outputDoc: '`{"status":200,"headers":{},"body":"…","ms":12}`',
    run: (ctx, v) => httpRequest(ctx, v),
  }),
  define({
    name: "mr_file_read",
    grant: "path matches `files.read`",
    allowed: (g) => g.files.read.length > 0,
    input: z.object({ path: name }),
    inputDoc: '`{"path":"/etc/nginx/nginx.conf"}`',
    outputDoc: '`{"content":"…"}`',
    async run(ctx, v) {
      const fc = fileCtx(ctx, "mr_file_read", ctx.grants.files.read, v.path);
      return { content: await readGrantedFile(fc, v.path) };
    },
  }),
  define({
    name: "mr_file_write",
    grant: "path matches `files.write`",
    allowed: (g) => g.files.write.length > 0,
    input: z.object({ path: name, content: z.string(), append: z.boolean().optional() }),
    inputDoc: '`{"path":"/var/lib/x","content":"…","append"?:false}`',
    outputDoc: '`{"bytes":n}`',
    run(ctx, v) {
      const fc = fileCtx(ctx, "mr_file_write", ctx.grants.files.write, v.path);
      return { bytes: writeGrantedFile(fc, v.path, v.content, v.append === true) };
    },
  }),
  define({
    name: "mr_governor",
    grant: "name in `governors`",
    allowed: (g) => g.governors.length > 0,
    input: z.object({ name, action: z.enum(["acquire", "release"]), timeout_ms: timeoutMs }),
    inputDoc: '`{"name":"rollout","action":"acquire\\|release","timeout_ms"?:n}`',
    outputDoc: '`{"held":true,"seq"?:n}`',
    run(ctx, v) {
      if (!ctx.grants.governors.includes(v.name)) {
        deny(ctx, "mr_governor", `Governor not granted: "${v.name}"`, { governor: v.name });
      }
      return ctx.services.governor(ctx.agent, {
        name: v.name,
        action: v.action,
        ...(v.timeout_ms !== undefined
          ? { timeout_ms: Math.min(v.timeout_ms, remainingMs(ctx)) }
          : {}),
      });
    },
  }),
  define({
    name: "mr_is_leader",
    grant: "none",
    allowed: () => true,
    input: z.object({}),
    inputDoc: "`{}`",
    outputDoc: '`{"leader":true}`',
    run: async (ctx) => ({ leader: await ctx.services.isLeader(ctx.agent) }),
  }),
  define({
    name: "mr_transition",
    grant: "none",
    allowed: () => true,
    input: z.object({ from: name, to: name, reason: z.string().optional() }),
    inputDoc: '`{"from":"stopped","to":"running","reason"?:"…"}`',
    outputDoc: '`{"id":"<ulid>"}`',
    run(ctx, v) {
      maxBytes("mr_transition", jsonBytes([v.from, v.to, v.reason ?? ""]), L.MAX_TRANSITION_BYTES);
      return ctx.services.transition(ctx.agent, {
        from: v.from,
        to: v.to,
        ...(v.reason !== undefined ? { reason: v.reason } : {}),
      });
    },
  }),
];

/** The table by name. */
export const HOST_FUNCTIONS_BY_NAME: ReadonlyMap<string, HostFunction> = new Map(
  HOST_FUNCTION_TABLE.map((f) => [f.name, f]),
);
