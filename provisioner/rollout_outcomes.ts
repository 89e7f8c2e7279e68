/**
 * The vendor's view of a self-stopping rollout: every node's outcome for an agent from KV
 * `MR_ROLLOUT` (`<site>.<node>.<agent>`, written by the nodes), and whether the rollout of
 * the desired hash has halted under the spec's `max_failures` (the rule the nodes apply,
 * `rolloutDecision` in src/agents/rollout.ts).
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { isStreamNotFound } from "../src/nats/errors.ts";
import {
  type NodeRecord,
  parseRolloutRecord,
  ROLLOUT_BUCKET,
  rolloutDecision,
  type RolloutRecord,
} from "../src/agents/rollout.ts";
import type { Rollout } from "../src/desired/spec.ts";

/** Outcomes of one agent's rollout at one site. */
export interface RolloutOutcomes {
  site: string;
  /** The hash the site key names now, if any. */
  sha256: string | null;
  max_failures: Rollout["max_failures"] | null;
  /** Per node (`<node>`): its last record. */
  nodes: Record<string, RolloutRecord>;
  /** Nodes that failed on `sha256`, and the limit that halts the rollout. */
  failed: number;
  limit: number | null;
  halted: boolean;
}

/** Reads the outcomes of `agent` at `site` (its desired hash and rollout block given). */
export async function rolloutOutcomes(
  nc: NatsConnection,
  site: string,
  agent: string,
  desired: { sha256: string | null; rollout: Partial<Rollout> | null },
): Promise<RolloutOutcomes> {
  const out: RolloutOutcomes = {
    site,
    sha256: desired.sha256,
    max_failures: desired.rollout?.max_failures ?? null,
    nodes: {},
    failed: 0,
    limit: null,
    halted: false,
  };
  let kv;
  try {
    kv = await new Kvm(nc).open(ROLLOUT_BUCKET);
    await kv.status();
  } catch (err) {
    if (isStreamNotFound(err)) return out;
    throw err;
  }
  const keys: string[] = [];
  for await (const k of await kv.keys(`${site}.*.${agent}`)) keys.push(k);
  const records: NodeRecord[] = [];
  for (const k of keys.sort()) {
    const e = await kv.get(k);
    if (!e || e.operation !== "PUT") continue;
    const r = parseRolloutRecord(e.value);
    if (!r) continue; // not a record: neither fails nor counts
    const node = k.split(".")[1]!;
    out.nodes[node] = r;
    records.push({ ...r, node });
  }
  if (desired.sha256 && out.max_failures !== null) {
    const d = rolloutDecision(records, desired.sha256, out.max_failures, {
      self: "",
      now: Date.now(),
    });
    out.failed = d.failed;
    out.limit = d.limit;
    out.halted = d.decision === "halted";
  } else if (desired.sha256) {
    out.failed = records.filter((r) => r.sha256 === desired.sha256 && r.state === "failed")
      .length;
  }
  return out;
}
