/**
 * The console's live fleet view: one server-side subscription set per customer account,
 * folded into a bounded in-memory picture that every browser session reads.
 *
 * Sources (per customer connection):
 * - `MR_NODES` (last facts per node) through an ordered consumer that starts at the last
 *   message per subject and then follows new ones;
 * - `MR_EVENTS` likewise: the last event per subject gives each node's last lifecycle
 *   event (alive/shutdown) and last agent event, then every new event is folded in and
 *   fanned out to live-tail listeners;
 * - `MR_ELECTION` (KV watch) for the leader badge.
 *
 * Memory is bounded: {@linkcode FleetViewOptions.maxNodes} nodes, a ring of
 * {@linkcode FleetViewOptions.recentEvents} recent events, a few events per node.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";

/** Health as the console shows it: `offline` is never green. */
export type NodeHealth = "healthy" | "degraded" | "unhealthy" | "offline" | "unknown";

/** One agent as last reported by a node. */
export interface AgentRow {
  name: string;
  status: string;
  sha256: string | null;
  version: number | null;
  time: string;
}

/** One node of the fleet. */
export interface NodeRow {
  customer: string;
  site: string;
  node: string;
  health: NodeHealth;
  /** Status the node itself last reported (alive event), if any. */
  reported: string | null;
  lastSeen: number | null;
  version: string | null;
  os: string | null;
  hostname: string | null;
  leader: boolean;
  spoolDepth: number | null;
  deadLetters: number | null;
  rss: number | null;
  agents: AgentRow[];
  /** Estimated heartbeat interval (ms), from the last two alive events. */
  heartbeatMs: number | null;
  stoppedAt: number | null;
}

/** A CloudEvent as received, with the customer it came from. */
export interface ViewEvent {
  customer: string;
  subject: string;
  seq: number;
  event: Record<string, unknown>;
}

/** Options of {@linkcode createFleetView}. */
export interface FleetViewOptions {
  /** @default {1e4} */
  maxNodes?: number;
  /** Metric series whose latest value is kept. @default {50_000} */
  maxSeries?: number;
  /** Recent events kept for new live-tail sessions. @default {500} */
  recentEvents?: number;
  /** A node is offline when not seen for this many heartbeats. @default {3} */
  offlineAfterBeats?: number;
  /** Heartbeat assumed until two alive events were seen. @default {30_000} */
  defaultHeartbeatMs?: number;
  /** @default {Date.now} */
  now?: () => number;
}

interface NodeState {
  customer: string;
  site: string;
  node: string;
  facts: Record<string, unknown> | null;
  lastSeen: number | null;
  aliveAt: number | null;
  prevAliveAt: number | null;
  alive: Record<string, unknown> | null;
  stoppedAt: number | null;
  agents: Map<string, AgentRow>;
}

/** The latest value of one metric series of one node (for `/metrics`). */
export interface LatestSample {
  customer: string;
  site: string;
  node: string;
  name: string;
  kind: string;
  labels: Record<string, string>;
  value: number;
  time: number;
}

/** The fleet view: read by the HTTP handlers, fed by NATS. */
export interface FleetView extends AsyncDisposable {
  customers(): string[];
  nodes(): NodeRow[];
  node(customer: string, site: string, node: string): NodeRow | null;
  facts(customer: string, site: string, node: string): Record<string, unknown> | null;
  recent(): ViewEvent[];
  /** The latest sample of every metric series seen since start (bounded). */
  samples(): LatestSample[];
  /** Calls `fn` for every new event until the returned function is called. */
  listen(fn: (e: ViewEvent) => void): () => void;
  connection(customer: string): NatsConnection | null;
  /** Resolves once every source delivered its backlog (or after `timeoutMs`). */
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const LIFECYCLE = "io.machineroom.lifecycle.v1.";
const AGENT = "io.machineroom.agent.v1.";

function nodeKey(c: string, s: string, n: string): string {
  return `${c}/${s}/${n}`;
}

/** Builds the view over one connection per customer (`name → connection`). */
export function createFleetView(
  connections: Map<string, NatsConnection>,
  options: FleetViewOptions = {},
): FleetView {
  const now = options.now ?? Date.now;
  const maxNodes = options.maxNodes ?? 10_000;
  const ringSize = options.recentEvents ?? 500;
  const beats = options.offlineAfterBeats ?? 3;
  const defaultBeat = options.defaultHeartbeatMs ?? 30_000;
  const nodes = new Map<string, NodeState>();
  const leaders = new Map<string, string>(); // customer/site → node
  const ring: ViewEvent[] = [];
  const latest = new Map<string, LatestSample>();
  const maxSeries = options.maxSeries ?? 50_000;
  const listeners = new Set<(e: ViewEvent) => void>();
  const stops: (() => void)[] = [];
  const readies: Promise<void>[] = [];
  let closed = false;

  const state = (customer: string, site: string, node: string): NodeState | null => {
    const k = nodeKey(customer, site, node);
    let s = nodes.get(k);
    if (!s) {
      if (nodes.size >= maxNodes) return null;
      s = {
        customer,
        site,
        node,
        facts: null,
        lastSeen: null,
        aliveAt: null,
        prevAliveAt: null,
        alive: null,
        stoppedAt: null,
        agents: new Map(),
      };
      nodes.set(k, s);
    }
    return s;
  };

  const seen = (s: NodeState, t: number) => {
    if (s.lastSeen === null || t > s.lastSeen) s.lastSeen = t;
  };

  const foldEvent = (
    customer: string,
    site: string,
    node: string,
    ev: Record<string, unknown>,
    t: number,
  ) => {
    const s = state(customer, site, node);
    if (!s) return;
    const type = String(ev.type ?? "");
    const data = (ev.data && typeof ev.data === "object" ? ev.data : {}) as Record<string, unknown>;
    if (type.startsWith(LIFECYCLE)) {
      const what = type.slice(LIFECYCLE.length);
      if (what === "shutdown") s.stoppedAt = t;
      else if (what === "alive" || what === "startup" || what === "provisioned") {
        if (s.stoppedAt !== null && t > s.stoppedAt) s.stoppedAt = null;
        if (what === "alive") {
          if (s.aliveAt === null || t > s.aliveAt) {
            s.prevAliveAt = s.aliveAt;
            s.aliveAt = t;
            s.alive = data;
            // the heartbeat carries a snapshot of the node's agents: authoritative
            if (Array.isArray(data.agents)) {
              s.agents.clear();
              for (const a of data.agents as Record<string, unknown>[]) {
                if (typeof a?.name !== "string") continue;
                s.agents.set(a.name, {
                  name: a.name,
                  status: String(a.status ?? "unknown"),
                  sha256: typeof a.sha256 === "string" ? a.sha256 : null,
                  version: typeof a.version === "number" ? a.version : null,
                  time: String(ev.time ?? ""),
                });
              }
            }
          }
        }
      }
    } else if (type.startsWith(AGENT)) {
      const what = type.slice(AGENT.length);
      const name = String(data.agent ?? ev.mragent ?? "");
      if (name) {
        const prev = s.agents.get(name);
        if (what === "removed") s.agents.delete(name);
        else if (what !== "transition") {
          const status = what === "started" || what === "updated"
            ? "running"
            : what === "failed" || what === "rejected"
            ? "failed"
            : what === "stopped"
            ? "stopped"
            : prev?.status ?? what;
          const sha = (data.to ?? data.sha256 ?? prev?.sha256 ?? null) as string | null;
          const version = typeof data.version === "number" ? data.version : prev?.version ?? null;
          s.agents.set(name, { name, status, sha256: sha, version, time: String(ev.time ?? "") });
        }
      }
    }
    seen(s, t);
  };

  const health = (s: NodeState): NodeHealth => {
    const t = now();
    if (s.stoppedAt !== null) return "offline";
    const beat = s.aliveAt !== null && s.prevAliveAt !== null
      ? Math.max(1_000, s.aliveAt - s.prevAliveAt)
      : defaultBeat;
    if (s.lastSeen === null || t - s.lastSeen > beats * beat) return "offline";
    const reported = s.alive?.status;
    if (reported === "healthy" || reported === "degraded" || reported === "unhealthy") {
      return reported;
    }
    return "unknown";
  };

  const row = (s: NodeState): NodeRow => {
    const f = (s.facts ?? {}) as Record<string, Record<string, unknown> | undefined>;
    const os = f.os ? `${f.os.distro ?? f.os.platform ?? ""} ${f.os.release ?? ""}`.trim() : null;
    const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
    const agents = [...s.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
    return {
      customer: s.customer,
      site: s.site,
      node: s.node,
      health: health(s),
      reported: typeof s.alive?.status === "string" ? s.alive.status : null,
      lastSeen: s.lastSeen,
      version: (f.agent?.version as string | undefined) ?? null,
      os: os || null,
      hostname: (f.os?.hostname as string | undefined) ?? null,
      leader: leaders.get(`${s.customer}/${s.site}`) === s.node,
      spoolDepth: num(s.alive?.spool_depth),
      deadLetters: num(s.alive?.dead_letters),
      rss: num(s.alive?.rss),
      agents,
      heartbeatMs: s.aliveAt !== null && s.prevAliveAt !== null ? s.aliveAt - s.prevAliveAt : null,
      stoppedAt: s.stoppedAt,
    };
  };

  const follow = (
    nc: NatsConnection,
    stream: string,
    filter: string,
    onMsg: (subject: string, data: Uint8Array, t: number, seq: number) => void,
    sinceMs?: number,
  ) => {
    let resolveReady!: () => void;
    readies.push(new Promise<void>((r) => (resolveReady = r)));
    (async () => {
      for (let attempt = 0; !closed; attempt++) {
        try {
          const c = await jetstream(nc).consumers.get(stream, {
            filter_subjects: filter,
            ...(sinceMs === undefined ? { deliver_policy: DeliverPolicy.LastPerSubject } : {
              deliver_policy: DeliverPolicy.StartTime,
              opt_start_time: new Date(now() - sinceMs).toISOString(),
            }),
          });
          const info = await c.info(true);
          if (info.num_pending === 0) resolveReady();
          const msgs = await c.consume({ max_messages: 512 });
          stops.push(() => msgs.stop());
          if (closed) msgs.stop();
          for await (const m of msgs) {
            const t = Math.floor(m.info.timestampNanos / 1_000_000);
            try {
              onMsg(m.subject, m.data, t, m.seq);
            } catch { /* a malformed message never stops the view */ }
            if (m.info.pending === 0) resolveReady();
          }
        } catch {
          // stream missing (customer not initialised yet) or connection trouble: retry
          resolveReady();
          await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** attempt)));
        }
      }
    })();
  };

  const dec = new TextDecoder();
  for (const [customer, nc] of connections) {
    follow(nc, "MR_NODES", "mr.*.*.facts", (subject, data, t) => {
      const [, site, node] = subject.split(".");
      const s = state(customer, site!, node!);
      if (!s) return;
      s.facts = JSON.parse(dec.decode(data));
      seen(s, t);
    });
    follow(nc, "MR_EVENTS", "mr.*.*.ev.>", (subject, data, t, seq) => {
      const [, site, node] = subject.split(".");
      const ev = JSON.parse(dec.decode(data)) as Record<string, unknown>;
      foldEvent(customer, site!, node!, ev, t);
      const e: ViewEvent = { customer, subject, seq, event: ev };
      ring.push(e);
      if (ring.length > ringSize) ring.splice(0, ring.length - ringSize);
      for (const l of listeners) l(e);
    });
    follow(nc, "MR_METRICS", "mr.*.*.metrics", (subject, data, t) => {
      const [, site, node] = subject.split(".");
      const doc = JSON.parse(dec.decode(data)) as Record<string, unknown>;
      if (typeof doc.name !== "string" || typeof doc.value !== "number") return;
      const labels: Record<string, string> = {};
      if (doc.labels && typeof doc.labels === "object") {
        for (const [k, v] of Object.entries(doc.labels)) labels[k] = String(v);
      }
      if (typeof doc.agent === "string") labels.agent = doc.agent;
      const key = `${customer}/${site}/${node}/${doc.name}${JSON.stringify(labels)}`;
      if (!latest.has(key) && latest.size >= maxSeries) return;
      latest.set(key, {
        customer,
        site: site!,
        node: node!,
        name: doc.name,
        kind: typeof doc.kind === "string" ? doc.kind : "gauge",
        labels,
        value: doc.value,
        time: t,
      });
    }, 10 * 60_000);
    (async () => {
      try {
        const kv = await new Kvm(nc).open("MR_ELECTION");
        const w = await kv.watch({ key: "site.*" });
        stops.push(() => w.stop());
        for await (const e of w) {
          const site = e.key.slice(5);
          if (e.operation === "PUT") leaders.set(`${customer}/${site}`, dec.decode(e.value));
          else leaders.delete(`${customer}/${site}`);
        }
      } catch { /* no election bucket: no leader badges */ }
    })();
  }

  return {
    customers: () => [...connections.keys()].sort(),
    nodes: () => [...nodes.values()].map(row),
    node: (c, s, n) => {
      const st = nodes.get(nodeKey(c, s, n));
      return st ? row(st) : null;
    },
    facts: (c, s, n) => nodes.get(nodeKey(c, s, n))?.facts ?? null,
    recent: () => ring.slice(),
    samples: () => [...latest.values()],
    listen(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    connection: (c) => connections.get(c) ?? null,
    async ready(timeoutMs = 10_000) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(readies),
        new Promise((r) => (timer = setTimeout(r, timeoutMs))),
      ]);
      clearTimeout(timer);
    },
    close() {
      closed = true;
      for (const s of stops) {
        try {
          s();
        } catch { /* already stopped */ }
      }
      listeners.clear();
      return Promise.resolve();
    },
    async [Symbol.asyncDispose]() {
      await this.close();
    },
  };
}
