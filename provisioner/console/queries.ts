/**
 * On-demand reads of the console: a node's events and metrics over a range (ordered
 * consumers on `MR_EVENTS` / `MR_METRICS`, bounded), the desired state (`MR_DESIRED`) and
 * commands sent to nodes with a per-target outcome.
 *
 * @module
 */
import {
  type NatsConnection,
  NoRespondersError,
  PermissionViolationError,
  TimeoutError,
} from "@nats-io/transport-node";
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";

const dec = new TextDecoder();
const enc = new TextEncoder();

/** Ranges a metrics graph can show. */
export const RANGES = { "1h": 3600_000, "24h": 86_400_000, "7d": 7 * 86_400_000 } as const;
/** A range name. */
export type RangeName = keyof typeof RANGES;

/** Reads up to `max` messages of `stream` matching `filter` since `sinceMs`. */
async function readRange(
  nc: NatsConnection,
  stream: string,
  filter: string,
  sinceMs: number,
  max: number,
  timeoutMs: number,
  onMsg: (data: Uint8Array, t: number, subject: string) => void,
): Promise<{ count: number; truncated: boolean }> {
  const js = jetstream(nc);
  let c;
  try {
    c = await js.consumers.get(stream, {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: new Date(sinceMs).toISOString(),
    });
  } catch {
    return { count: 0, truncated: false }; // no stream yet
  }
  const info = await c.info(true);
  let pending = info.num_pending;
  if (pending === 0) return { count: 0, truncated: false };
  // newest `max` only: skip what does not fit
  const skip = Math.max(0, pending - max);
  let count = 0;
  let seen = 0;
  const deadline = Date.now() + timeoutMs;
  while (pending > 0 && Date.now() < deadline) {
    const batch = await c.fetch({ max_messages: Math.min(pending, 4096), expires: 2_000 });
    let got = 0;
    for await (const m of batch) {
      got++;
      pending = m.info.pending;
      if (seen++ < skip) continue;
      try {
        onMsg(m.data, Math.floor(m.info.timestampNanos / 1_000_000), m.subject);
        count++;
      } catch { /* malformed message: skipped */ }
    }
    if (got === 0) break;
  }
  return { count, truncated: skip > 0 || pending > 0 };
}

/** A metrics series: `[times (s), values]`, downsampled to at most `points` buckets. */
export interface Series {
  name: string;
  labels: Record<string, string>;
  t: number[];
  v: number[];
}

/** A node's metrics over `range`, grouped by name + labels and bucket-averaged. */
export async function nodeMetrics(
  nc: NatsConnection,
  site: string,
  node: string,
  range: RangeName,
  o: { points?: number; max?: number; now?: number } = {},
): Promise<{ series: Series[]; samples: number; truncated: boolean }> {
  const now = o.now ?? Date.now();
  const from = now - RANGES[range];
  const points = o.points ?? 720;
  const bucketMs = Math.max(1_000, Math.ceil(RANGES[range] / points));
  const acc = new Map<
    string,
    { name: string; labels: Record<string, string>; b: Map<number, [number, number]> }
  >();
  const r = await readRange(
    nc,
    "MR_METRICS",
    `mr.${site}.${node}.metrics`,
    from,
    o.max ?? 200_000,
    5_000,
    (data, t) => {
      const doc = JSON.parse(dec.decode(data)) as Record<string, unknown>;
      if (typeof doc.name !== "string" || typeof doc.value !== "number") return;
      const labels = (doc.labels && typeof doc.labels === "object" ? doc.labels : {}) as Record<
        string,
        string
      >;
      if (typeof doc.agent === "string") labels.agent = doc.agent;
      const key = doc.name + JSON.stringify(labels);
      let s = acc.get(key);
      if (!s) acc.set(key, s = { name: doc.name, labels, b: new Map() });
      const time = typeof doc.time === "string" ? Date.parse(doc.time) || t : t;
      const bucket = Math.floor(time / bucketMs) * bucketMs;
      const cur = s.b.get(bucket);
      if (cur) {
        cur[0] += doc.value;
        cur[1]++;
      } else s.b.set(bucket, [doc.value, 1]);
    },
  );
  const series: Series[] = [];
  for (const s of acc.values()) {
    const keys = [...s.b.keys()].sort((a, b) => a - b);
    series.push({
      name: s.name,
      labels: s.labels,
      t: keys.map((k) => k / 1000),
      v: keys.map((k) => {
        const [sum, n] = s.b.get(k)!;
        return sum / n;
      }),
    });
  }
  series.sort((a, b) =>
    (a.name + JSON.stringify(a.labels)).localeCompare(b.name + JSON.stringify(b.labels))
  );
  return { series, samples: r.count, truncated: r.truncated };
}

/** A node's newest events (at most `max`) of the last `sinceMs`. */
export async function nodeEvents(
  nc: NatsConnection,
  site: string,
  node: string,
  o: { sinceMs?: number; max?: number } = {},
): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  await readRange(
    nc,
    "MR_EVENTS",
    `mr.${site}.${node}.ev.>`,
    Date.now() - (o.sinceMs ?? RANGES["24h"]),
    o.max ?? 200,
    5_000,
    (data) => {
      out.push(JSON.parse(dec.decode(data)));
    },
  );
  return out.reverse();
}

/** One desired-state key, decoded (the signature is checked by nodes, not here). */
export interface DesiredEntry {
  key: string;
  revision: number;
  signer: string | null;
  version: number | null;
  agents: Record<string, unknown>[];
  error?: string;
}

/** Every key of `MR_DESIRED`, decoded. */
export async function desiredState(nc: NatsConnection): Promise<DesiredEntry[]> {
  const out: DesiredEntry[] = [];
  let kv;
  try {
    kv = await new Kvm(nc).open("MR_DESIRED");
  } catch {
    return out;
  }
  for await (const key of await kv.keys()) {
    const e = await kv.get(key);
    if (!e || e.operation !== "PUT") continue;
    try {
      const env = JSON.parse(dec.decode(e.value)) as { spec?: string; key?: string };
      const bin = atob(String(env.spec ?? ""));
      const spec = JSON.parse(dec.decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0))));
      out.push({
        key,
        revision: e.revision,
        signer: typeof env.key === "string" ? env.key : null,
        version: typeof spec.version === "number" ? spec.version : null,
        agents: Array.isArray(spec.agents) ? spec.agents : [],
      });
    } catch (err) {
      out.push({
        key,
        revision: e.revision,
        signer: null,
        version: null,
        agents: [],
        error: `cannot decode: ${(err as Error).message}`,
      });
    }
  }
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

/** What happened to one target of a command. */
export type Outcome = "answered" | "timed_out" | "offline" | "denied" | "error";

/** One target's result. */
export interface CommandResult {
  customer: string;
  site: string;
  node: string;
  outcome: Outcome;
  reply?: unknown;
  error?: string;
  ms: number;
}

/** Error codes in a reply that mean the node refused on authority grounds. */
const DENIED_CODES = new Set(["capability_denied", "permission_denied", "forbidden", "denied"]);

/** Sends `command` to one node and classifies the outcome. */
export async function sendCommand(
  nc: NatsConnection,
  target: { customer: string; site: string; node: string },
  command: string,
  payload: unknown,
  timeoutMs = 5_000,
): Promise<CommandResult> {
  const t0 = performance.now();
  const base = { ...target, ms: 0 };
  const done = (r: Omit<CommandResult, "ms" | "customer" | "site" | "node">): CommandResult => ({
    ...base,
    ...r,
    ms: Math.round(performance.now() - t0),
  });
  try {
    const m = await nc.request(
      `mr.${target.site}.${target.node}.cmd.${command}`,
      payload === undefined ? new Uint8Array() : enc.encode(JSON.stringify(payload)),
      { timeout: timeoutMs },
    );
    let reply: unknown;
    try {
      reply = JSON.parse(dec.decode(m.data));
    } catch {
      reply = dec.decode(m.data);
    }
    const code = (reply as { error?: { code?: string } } | null)?.error?.code;
    if (code && DENIED_CODES.has(code)) return done({ outcome: "denied", reply });
    return done({ outcome: "answered", reply });
  } catch (err) {
    const e = err as Error;
    const chain = [e, (e as { cause?: unknown }).cause];
    if (chain.some((x) => x instanceof NoRespondersError)) {
      return done({ outcome: "offline", error: "no node is listening (offline)" });
    }
    if (chain.some((x) => x instanceof PermissionViolationError)) {
      return done({ outcome: "denied", error: e.message });
    }
    if (chain.some((x) => x instanceof TimeoutError)) {
      return done({ outcome: "timed_out", error: `no reply within ${timeoutMs} ms` });
    }
    return done({ outcome: "error", error: e.message });
  }
}
