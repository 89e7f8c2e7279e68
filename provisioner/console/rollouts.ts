/**
 * Rollout state for the console: every agent whose desired spec has a `rollout` block,
 * with its governor's holders, the desired hash per key, and each node's version as the
 * fleet view last saw it (plus the node's recorded outcome from `MR_ROLLOUT` when that
 * bucket exists). Cached briefly: browsers poll it.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { createGovernorClient } from "../../src/governor/mod.ts";
import { desiredState } from "./queries.ts";
import type { RolloutView } from "./server.ts";
import type { FleetView } from "./view.ts";

const dec = new TextDecoder();

async function outcomes(nc: NatsConnection): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  try {
    const kv = await new Kvm(nc).open("MR_ROLLOUT");
    for await (const key of await kv.keys()) {
      const e = await kv.get(key);
      if (!e || e.operation !== "PUT") continue;
      try {
        out.set(key, JSON.parse(dec.decode(e.value)));
      } catch { /* not JSON */ }
    }
  } catch { /* no outcome bucket */ }
  return out;
}

/** Reads every rollout of `customer`. */
export async function readRollouts(view: FleetView, customer: string): Promise<RolloutView[]> {
  const nc = view.connection(customer);
  if (!nc) return [];
  const desired = await desiredState(nc);
  const byAgent = new Map<string, RolloutView>();
  for (const e of desired) {
    for (const a of e.agents) {
      const r = a.rollout as
        | { governor?: string; capacity?: number; max_failures?: unknown }
        | undefined;
      if (!r?.governor || typeof a.name !== "string") continue;
      let v = byAgent.get(a.name);
      if (!v) {
        byAgent.set(
          a.name,
          v = {
            customer,
            agent: a.name,
            governor: r.governor,
            capacity: r.capacity ?? null,
            holders: [],
            desired: {},
            nodes: {},
            halted: false,
          },
        );
      }
      v.desired[e.key] = {
        version: e.version ?? 0,
        sha256: ((a.wasm as { sha256?: string } | undefined)?.sha256) ?? null,
      };
    }
  }
  if (byAgent.size === 0) return [];
  const recorded = await outcomes(nc);
  const gov = createGovernorClient(nc);
  for (const v of byAgent.values()) {
    try {
      v.holders = await gov.holders(v.governor!);
    } catch { /* governor not created yet */ }
    const sites = new Set(Object.keys(v.desired).map((k) => k.split(".")[1]));
    for (const n of view.nodes()) {
      if (n.customer !== customer || !sites.has(n.site)) continue;
      const a = n.agents.find((x) => x.name === v.agent);
      const o = recorded.get(`${n.site}.${n.node}.${v.agent}`);
      if (!a && !o) continue;
      v.nodes[`${n.site}.${n.node}`] = {
        sha256: a?.sha256 ?? null,
        state: typeof o?.state === "string" ? o.state : null,
        code: typeof o?.code === "string" ? o.code : null,
      };
      if (o?.halted === true) v.halted = true;
    }
  }
  return [...byAgent.values()].sort((a, b) => a.agent.localeCompare(b.agent));
}
