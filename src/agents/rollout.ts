/**
 * Rollouts that stop themselves. Every node records its outcome for each hash of a
 * `rollout` agent it takes in KV bucket `MR_ROLLOUT`, key `<site>.<node>.<agent>`:
 * `{version, sha256, previous_sha256, state: started|healthy|failed, code, ts}`. Before a
 * node takes a new hash it reads its site's records for the agent; once `max_failures`
 * nodes failed on that hash the rollout has halted and the node keeps what it runs.
 *
 * A node writes only its own key (`<site>.<node>.>`, permission added by provisioning) and
 * reads its site's. `max_failures: "N%"` counts against the nodes that have any record for
 * the agent (every node records its first start), rounded up, at least 1.
 *
 * @module
 */
import { z } from "zod";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { AgentSpec, Rollout } from "../desired/spec.ts";
import type { Logger } from "../log/logger.ts";
import { isPermissionViolation, isStreamNotFound } from "../nats/errors.ts";

/** The KV bucket of rollout outcomes. */
export const ROLLOUT_BUCKET = "MR_ROLLOUT";

/** A node's outcome for one hash of one agent. */
export type RolloutState = "started" | "healthy" | "failed";

/** The value at `<site>.<node>.<agent>`. */
export interface RolloutRecord {
  version: number | null;
  sha256: string;
  previous_sha256: string | null;
  state: RolloutState;
  code: string | null;
  ts: string;
}

/** The record's schema: a value that does not match is ignored (it neither fails nor counts). */
export const rolloutRecordSchema = z.object({
  version: z.number().int().nullable(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  previous_sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  state: z.enum(["started", "healthy", "failed"]),
  code: z.string().max(200).nullable(),
  ts: z.string().max(64),
});

/** Parses one KV value; `null` when it is not a valid record. */
export function parseRolloutRecord(value: Uint8Array | string): RolloutRecord | null {
  try {
    const text = typeof value === "string" ? value : new TextDecoder().decode(value);
    const r = rolloutRecordSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** What the supervisor asks of rollouts. */
export interface RolloutGate {
  /**
   * May this node take `spec`'s hash now? `halted`: too many nodes failed on it (never);
   * `wait`: the nodes failed plus those still trying could reach the limit (ask again later);
   * `go`.
   */
  check(spec: AgentSpec): Promise<RolloutDecision>;
  /**
   * Records this node's outcome (no-op for specs without `rollout`). `false` when it could not
   * be written: a node must not take a hash without its `started` record, or the other nodes
   * cannot count it in flight.
   */
  record(
    spec: AgentSpec,
    previousSha: string | null,
    state: RolloutState,
    code?: string,
  ): Promise<boolean>;
}

/** How many failed nodes halt a rollout among `nodes` reporting ones. */
export function failureLimit(max: Rollout["max_failures"], nodes: number): number {
  if (max === undefined) return Infinity;
  if (typeof max === "number") return max;
  const pct = Number(max.slice(0, -1));
  return Math.max(1, Math.ceil((pct / 100) * nodes));
}

/** What a node does about a new hash: take it, wait, or never (the rollout halted). */
export type RolloutDecision = "go" | "wait" | "halted";

/** A `started` record older than this no longer counts as in flight (its node died). */
export const STALE_STARTED_MS = 600_000;

/** One node's record, with the node it belongs to. */
export interface NodeRecord extends RolloutRecord {
  node: string;
}

/**
 * Pure: may node `self` take `sha256`, given every node's record for the agent? Halted
 * once `failed ≥ limit`; wait while `failed + in flight (others' fresh "started") ≥ limit`,
 * so concurrent swaps cannot push the failures past the limit.
 */
export function rolloutDecision(
  records: readonly NodeRecord[],
  sha256: string,
  max: Rollout["max_failures"],
  o: { self: string; now: number },
): { decision: RolloutDecision; failed: number; inflight: number; limit: number } {
  const mine = records.filter((r) => r.sha256 === sha256);
  const failed = mine.filter((r) => r.state === "failed").length;
  const inflight =
    mine.filter((r) =>
      r.state === "started" && r.node !== o.self && o.now - Date.parse(r.ts) < STALE_STARTED_MS
    ).length;
  const limit = failureLimit(max, records.length);
  const decision = failed >= limit ? "halted" : failed + inflight >= limit ? "wait" : "go";
  return { decision, failed, inflight, limit };
}

/** Options of {@linkcode createKvRolloutGate}. */
export interface KvRolloutGateOptions {
  site: string;
  node: string;
  /** The live connection, or `null` while disconnected. */
  nats(): NatsConnection | null;
  now(): number;
  /** The desired-state version to record. */
  version(): number | null;
  logger: Logger;
}

/**
 * The keys `<site>.*.<agent>` of the bucket, from one stream-info request with a subjects
 * filter. Not `kv.keys()`: its ordered consumer can miss a key that is written while it lists
 * (the other nodes record while this one reads), and one missed `failed` lets one more node
 * take a hash that has already halted.
 */
async function siteKeys(nc: NatsConnection, site: string, agent: string): Promise<string[]> {
  const prefix = `$KV.${ROLLOUT_BUCKET}.`;
  const info = await (await jetstreamManager(nc)).streams.info(`KV_${ROLLOUT_BUCKET}`, {
    subjects_filter: `${prefix}${site}.*.${agent}`,
  });
  return Object.keys(info.state.subjects ?? {}).map((s) => s.slice(prefix.length)).sort();
}

/** Attempts at writing one outcome before {@linkcode RolloutGate.record} gives up. */
const RECORD_ATTEMPTS = 3;

/**
 * A {@linkcode RolloutGate} on KV `MR_ROLLOUT`. Without the bucket (or the node's permission
 * to read it) it never halts. While disconnected, or when the outcomes cannot be read (a
 * timeout on a loaded server), it answers `wait`: a node that cannot see the failures must not
 * take the hash blind, or one more node fails than `max_failures` allows.
 */
export function createKvRolloutGate(o: KvRolloutGateOptions): RolloutGate {
  const open = async () => {
    const nc = o.nats();
    if (!nc) return null;
    return await new Kvm(nc).open(ROLLOUT_BUCKET);
  };
  return {
    async check(spec) {
      if (!spec.rollout?.max_failures) return "go";
      try {
        const nc = o.nats();
        const kv = nc ? await new Kvm(nc).open(ROLLOUT_BUCKET) : null;
        if (!nc || !kv) {
          o.logger.warn("rollout: waiting for the connection to read outcomes", {
            agent: spec.name,
            sha256: spec.wasm.sha256,
          });
          return "wait";
        }
        const records: NodeRecord[] = [];
        for (const k of await siteKeys(nc, o.site, spec.name)) {
          const e = await kv.get(k);
          if (!e || e.operation !== "PUT") continue;
          const r = parseRolloutRecord(e.value);
          if (r) records.push({ ...r, node: k.split(".")[1]! });
        }
        const r = rolloutDecision(records, spec.wasm.sha256, spec.rollout.max_failures, {
          self: o.node,
          now: o.now(),
        });
        if (r.decision !== "go") {
          o.logger.warn(
            r.decision === "halted"
              ? "rollout halted: not taking the new version"
              : "rollout: waiting for nodes still trying the new version",
            { agent: spec.name, sha256: spec.wasm.sha256, ...r },
          );
        }
        return r.decision;
      } catch (err) {
        // no bucket, or creds without the permission: this node cannot take part (go)
        const absent = isStreamNotFound(err) || isPermissionViolation(err);
        o.logger.warn("cannot read rollout outcomes", {
          agent: spec.name,
          error: (err as Error).message,
          decision: absent ? "go" : "wait",
        });
        return absent ? "go" : "wait";
      }
    },
    async record(spec, previousSha, state, code) {
      if (!spec.rollout) return true;
      const rec: RolloutRecord = {
        version: o.version(),
        sha256: spec.wasm.sha256,
        previous_sha256: previousSha,
        state,
        code: code ?? null,
        ts: new Date(o.now()).toISOString(),
      };
      for (let attempt = 1;; attempt++) {
        try {
          const kv = await open();
          if (!kv) throw new Error("not connected");
          await kv.put(`${o.site}.${o.node}.${spec.name}`, JSON.stringify(rec));
          return true;
        } catch (err) {
          o.logger.warn("cannot record rollout outcome", {
            agent: spec.name,
            state,
            attempt,
            error: (err as Error).message,
          });
          if (attempt >= RECORD_ATTEMPTS || isStreamNotFound(err)) return false;
        }
      }
    },
  };
}
