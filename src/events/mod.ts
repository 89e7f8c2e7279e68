/**
 * CloudEvents (DESIGN §4) and the outbox: everything leaving the node is built here and
 * written to the durable spool; the replicator sends it.
 *
 * Wire formats written by the outbox:
 * - `event` → `mr.<site>.<node>.ev.<category>`: a CloudEvents 1.0 JSON document
 *   (structured mode), `Nats-Msg-Id` = CloudEvent `id`.
 * - `submit` → `mr.<site>.<node>.submit.<name>`: the payload as raw JSON (no envelope),
 *   `Nats-Msg-Id` = a fresh ULID, headers `Mr-Source` (`mr://…[/agents/<name>]`) and
 *   `Mr-Time` (RFC 3339).
 * - `metric` → `mr.<site>.<node>.metrics`: one JSON message per sample,
 *   `{"time","site","node","name","value","kind","labels"?,"agent"?}`, priority 3, TTL 1 h.
 *
 * @module
 */
import type { Outbox, OutboxEventOptions } from "../daemon/types.ts";
import { type Spool, SpoolFullError, type SpoolInput } from "../spool/mod.ts";
import { ulid as defaultUlid } from "../util/ulid.ts";

const TOKEN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const enc = new TextEncoder();

/** Options for {@linkcode createCloudEvent}. */
export interface CloudEventOptions {
  customer: string;
  site: string;
  node: string;
  category: string;
  event: string;
  data: unknown;
  agent?: string;
  subject?: string;
  type?: string;
  id?: string;
  time?: string | Date | number;
}

function checkToken(what: string, v: string): void {
  if (!TOKEN.test(v)) {
    throw new TypeError(`${what} must match ${TOKEN.source}, got ${JSON.stringify(v)}`);
  }
}

/** The `source` URI of a node or one of its agents. */
export function eventSource(
  c: { customer: string; site: string; node: string },
  agent?: string,
): string {
  return `mr://${c.customer}/${c.site}/${c.node}` + (agent ? `/agents/${agent}` : "");
}

/** Builds and validates a CloudEvents 1.0 JSON object per DESIGN §4. */
export function createCloudEvent(opts: CloudEventOptions): Record<string, unknown> {
  checkToken("category", opts.category);
  if (opts.agent !== undefined) checkToken("agent", opts.agent);
  if (!opts.type && !/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(opts.event)) {
    throw new TypeError(`event name must be a lowercase token, got ${JSON.stringify(opts.event)}`);
  }
  let time: string;
  if (opts.time === undefined) time = new Date().toISOString();
  else {
    const d = new Date(opts.time);
    if (isNaN(d.getTime())) throw new TypeError("invalid CloudEvent: time is not a valid date");
    time = d.toISOString();
  }
  const attrs: Record<string, unknown> = {
    specversion: "1.0",
    id: opts.id ?? defaultUlid(),
    source: eventSource(opts, opts.agent),
    type: opts.type ?? `io.machineroom.${opts.category}.v1.${opts.event}`,
    time,
    datacontenttype: "application/json",
    mrsite: opts.site,
    mrnode: opts.node,
    data: opts.data === undefined ? null : opts.data,
  };
  if (opts.agent !== undefined) attrs.mragent = opts.agent;
  if (opts.subject !== undefined) attrs.subject = opts.subject;
  // the attributes built here are valid by construction; only what the caller chose can
  // break the spec (validateCloudEvent checks whole documents from elsewhere)
  if (opts.id !== undefined && (typeof opts.id !== "string" || opts.id === "")) {
    throw new TypeError("invalid CloudEvent: id must be a non-empty string");
  }
  if (opts.type !== undefined && (typeof opts.type !== "string" || opts.type === "")) {
    throw new TypeError("invalid CloudEvent: type must be a non-empty string");
  }
  if (opts.subject !== undefined && (typeof opts.subject !== "string" || opts.subject === "")) {
    throw new TypeError("invalid CloudEvent: subject must be a non-empty string");
  }
  return attrs;
}

const CONTEXT_ATTRS = new Set([
  "specversion",
  "id",
  "source",
  "type",
  "time",
  "datacontenttype",
  "dataschema",
  "subject",
  "data",
  "data_base64",
]);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;
const MEDIA_TYPE = /^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/;
const URI_REF = /^[^\s]+$/;

/**
 * Checks a structured-mode CloudEvents 1.0 JSON object against the spec's rules: the
 * required attributes (`specversion` "1.0", non-empty `id`, `source` URI-reference and
 * `type`), the optional ones' formats (`time` RFC 3339, `datacontenttype` media type,
 * `dataschema` URI, non-empty `subject`) and extension attribute names (lower-case letters
 * and digits, at most 20) with scalar values.
 *
 * @throws {TypeError} naming the first offending attribute
 */
export function validateCloudEvent(ev: Record<string, unknown>): void {
  const bad = (attr: string, why: string) => {
    throw new TypeError(`invalid CloudEvent: ${attr} ${why}`);
  };
  if (ev.specversion !== "1.0") bad("specversion", 'must be "1.0"');
  for (const a of ["id", "source", "type"]) {
    if (typeof ev[a] !== "string" || (ev[a] as string).length === 0) {
      bad(a, "is required and must be a non-empty string");
    }
  }
  if (!URI_REF.test(ev.source as string)) bad("source", "must be a URI-reference");
  if (ev.time !== undefined) {
    if (typeof ev.time !== "string" || !RFC3339.test(ev.time) || isNaN(Date.parse(ev.time))) {
      bad("time", "must be an RFC 3339 timestamp");
    }
  }
  if (
    ev.datacontenttype !== undefined &&
    (typeof ev.datacontenttype !== "string" || !MEDIA_TYPE.test(ev.datacontenttype))
  ) bad("datacontenttype", "must be a media type (RFC 2046)");
  if (
    ev.dataschema !== undefined &&
    (typeof ev.dataschema !== "string" || !/^[a-z][a-z0-9+.-]*:\S+$/i.test(ev.dataschema))
  ) bad("dataschema", "must be an absolute URI");
  if (ev.subject !== undefined && (typeof ev.subject !== "string" || ev.subject.length === 0)) {
    bad("subject", "must be a non-empty string");
  }
  for (const [k, v] of Object.entries(ev)) {
    if (CONTEXT_ATTRS.has(k)) continue;
    if (!/^[a-z0-9]{1,20}$/.test(k)) {
      bad(k, "is not a valid extension name (lower-case letters and digits, at most 20)");
    }
    const t = typeof v;
    if (
      v !== null && t !== "string" && t !== "boolean" && !(t === "number" && Number.isInteger(v))
    ) {
      bad(k, "must be a string, boolean or integer");
    }
  }
}

/** Options for {@linkcode createOutbox}. */
export interface OutboxOptions {
  spool: Spool;
  config: { customer: string; site: string; node: string };
  now?: () => number;
  ulid?: () => string;
  /** TTL of events and submissions. @default {7 days} */
  defaultTtlMs?: number;
  /** TTL of metric samples. @default {1 hour} */
  metricTtlMs?: number;
}

/** Default event/submission TTL: 7 days. */
export const DEFAULT_EVENT_TTL_MS = 7 * 24 * 3600 * 1000;

function checkPriority(p: number | undefined, dflt: number): number {
  const v = p ?? dflt;
  if (!Number.isInteger(v) || v < 0 || v > 4) {
    throw new RangeError(`priority must be an integer 0..4, got ${v}`);
  }
  return v;
}

/** Creates the outbox over a spool (implements `Outbox` of src/daemon/types.ts). */
export function createOutbox(opts: OutboxOptions): Outbox {
  const { spool, config } = opts;
  const now = opts.now ?? Date.now;
  const mkId = opts.ulid ?? defaultUlid;
  const ttl = opts.defaultTtlMs ?? DEFAULT_EVENT_TTL_MS;
  const metricTtl = opts.metricTtlMs ?? 3600_000;
  checkToken("site", config.site);
  checkToken("node", config.node);
  const base = `mr.${config.site}.${config.node}`;

  // Group commit: messages spooled in the same tick share one SQLite transaction; every
  // promise resolves only after its transaction committed (resolved = durable).
  let queue: { msg: SpoolInput; resolve: () => void; reject: (e: unknown) => void }[] = [];
  const flush = () => {
    const batch = queue;
    queue = [];
    try {
      const refused = new Set(spool.appendMany(batch.map((b) => b.msg)).refused);
      for (const b of batch) {
        if (refused.has(b.msg.id)) b.reject(new SpoolFullError(b.msg.id, b.msg.priority));
        else b.resolve();
      }
    } catch {
      // isolate the failing message(s): retry one by one
      for (const b of batch) {
        try {
          spool.append(b.msg);
          b.resolve();
        } catch (e) {
          b.reject(e);
        }
      }
    }
  };
  const enqueue = (msg: SpoolInput): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (queue.length === 0) queueMicrotask(flush);
      queue.push({ msg, resolve, reject });
    });

  return {
    event(category: string, event: string, data: unknown, o: OutboxEventOptions = {}) {
      try {
        const t = now();
        const id = mkId();
        const ce: CloudEventOptions = {
          ...config,
          category,
          event,
          data,
          id,
          time: t,
        };
        if (o.agent !== undefined) ce.agent = o.agent;
        if (o.subject !== undefined) ce.subject = o.subject;
        if (o.type !== undefined) ce.type = o.type;
        const doc = createCloudEvent(ce);
        return enqueue({
          id,
          subject: `${base}.ev.${category}`,
          payload: enc.encode(JSON.stringify(doc)),
          priority: checkPriority(o.priority, 2),
          createdAt: t,
          expiresAt: t + ttl,
        }).then(() => id);
      } catch (e) {
        return Promise.reject(e);
      }
    },
    submit(subject, payload, o = {}) {
      try {
        checkToken("submit subject", subject);
        if (o.agent !== undefined) checkToken("agent", o.agent);
        const t = now();
        const id = o.id ?? mkId();
        const body = JSON.stringify(payload === undefined ? null : payload);
        return enqueue({
          id,
          subject: `${base}.submit.${subject}`,
          payload: enc.encode(body),
          headers: {
            "Mr-Source": eventSource(config, o.agent),
            "Mr-Time": new Date(t).toISOString(),
          },
          priority: checkPriority(o.priority, 2),
          createdAt: t,
          expiresAt: t + (o.ttlMs ?? ttl),
        }).then(() => id);
      } catch (e) {
        return Promise.reject(e);
      }
    },
    metric(sample) {
      try {
        if (typeof sample.name !== "string" || sample.name === "") {
          throw new TypeError("metric name must be a non-empty string");
        }
        if (typeof sample.value !== "number" || !Number.isFinite(sample.value)) {
          throw new TypeError(`metric ${sample.name}: value must be a finite number`);
        }
        const t = now();
        const doc: Record<string, unknown> = {
          time: new Date(t).toISOString(),
          site: config.site,
          node: config.node,
          name: sample.name,
          value: sample.value,
          kind: sample.kind ?? "gauge",
        };
        if (sample.labels) doc.labels = sample.labels;
        if (sample.agent !== undefined) doc.agent = sample.agent;
        return enqueue({
          id: mkId(),
          subject: `${base}.metrics`,
          payload: enc.encode(JSON.stringify(doc)),
          priority: 3,
          createdAt: t,
          expiresAt: t + metricTtl,
        });
      } catch (e) {
        return Promise.reject(e);
      }
    },
  };
}
