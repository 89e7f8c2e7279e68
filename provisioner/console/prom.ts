/**
 * `GET /metrics`: the fleet in the Prometheus text exposition format (version 0.0.4), for
 * the vendor's own monitoring. Every series is labelled `customer`, `site`, `node`; the
 * latest sample of every metric the nodes forward (exporter scrapes, agent metrics, the
 * daemon's host metrics) is re-exposed under its own name with its own labels added.
 *
 * @module
 */
import type { FleetView, NodeRow } from "./view.ts";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const RESERVED = new Set(["customer", "site", "node"]);

/** Escapes a label value (backslash, double quote, newline). */
export function escapeLabel(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function fmt(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

class Families {
  #f = new Map<string, { help: string; type: string; lines: Map<string, string> }>();
  add(name: string, type: string, help: string, l: Record<string, string>, v: number): void {
    let f = this.#f.get(name);
    if (!f) this.#f.set(name, f = { help, type, lines: new Map() });
    const key = labels(l);
    // one line per series: a later duplicate replaces the earlier one
    f.lines.set(key, `${name}${key} ${fmt(v)}`);
  }
  has(name: string): boolean {
    return this.#f.has(name);
  }
  text(): string {
    const out: string[] = [];
    for (const [name, f] of this.#f) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`, ...f.lines.values());
    }
    return out.join("\n") + "\n";
  }
}

/** Rollout progress for `/metrics`: nodes per agent and state. */
export interface RolloutGauge {
  customer: string;
  agent: string;
  /** Nodes on the desired version / nodes reporting. */
  updated: number;
  total: number;
  halted: boolean;
}

const HEALTHS = ["healthy", "degraded", "unhealthy", "offline", "unknown"] as const;

/** Renders the exposition text. */
export function renderMetrics(view: FleetView, rollouts: RolloutGauge[], now = Date.now()): string {
  const f = new Families();
  const rows: NodeRow[] = view.nodes();
  for (const n of rows) {
    const id = { customer: n.customer, site: n.site, node: n.node };
    f.add(
      "mr_node_up",
      "gauge",
      "1 when the node was seen recently, 0 when offline",
      id,
      n.health === "offline" ? 0 : 1,
    );
    for (const h of HEALTHS) {
      f.add("mr_node_health", "gauge", "The node's health (one series per status, 1 = current)", {
        ...id,
        status: h,
      }, n.health === h ? 1 : 0);
    }
    if (n.lastSeen !== null) {
      f.add(
        "mr_node_last_seen_age_seconds",
        "gauge",
        "Seconds since the node was last heard from",
        id,
        Math.max(0, (now - n.lastSeen) / 1000),
      );
    }
    if (n.spoolDepth !== null) {
      f.add(
        "mr_node_spool_depth",
        "gauge",
        "Messages waiting in the node's spool",
        id,
        n.spoolDepth,
      );
    }
    if (n.deadLetters !== null) {
      f.add(
        "mr_node_dead_letters",
        "gauge",
        "Messages the server refused, parked on the node",
        id,
        n.deadLetters,
      );
    }
    const counts = new Map<string, number>();
    for (const a of n.agents) counts.set(a.status, (counts.get(a.status) ?? 0) + 1);
    for (const st of ["running", "failed", "stopped"]) counts.set(st, counts.get(st) ?? 0);
    for (const [st, c] of counts) {
      f.add("mr_node_agents", "gauge", "Agents on the node by status", { ...id, status: st }, c);
    }
  }
  for (const r of rollouts) {
    const l = { customer: r.customer, agent: r.agent };
    f.add(
      "mr_rollout_nodes_updated",
      "gauge",
      "Nodes running the agent's desired version",
      l,
      r.updated,
    );
    f.add("mr_rollout_nodes", "gauge", "Nodes reporting the agent", l, r.total);
    f.add(
      "mr_rollout_halted",
      "gauge",
      "1 when the rollout stopped itself after failures",
      l,
      r.halted ? 1 : 0,
    );
  }
  for (const s of view.samples()) {
    if (!NAME.test(s.name) || f.has(s.name) && s.name.startsWith("mr_node_")) continue;
    const l: Record<string, string> = { customer: s.customer, site: s.site, node: s.node };
    for (const [k, v] of Object.entries(s.labels)) {
      if (LABEL.test(k) && !k.startsWith("__") && !RESERVED.has(k)) l[k] = v;
    }
    const type = s.kind === "counter" ? "counter" : "gauge";
    f.add(s.name, type, `Forwarded from the nodes (${type})`, l, s.value);
  }
  return f.text();
}
