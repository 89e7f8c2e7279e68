/**
 * The SaaS-side streams and buckets of DESIGN §4, created idempotently by `mr-saas init`
 * (and by tests and the demo).
 *
 * | name | subjects | limits (defaults) |
 * |---|---|---|
 * | `MR_EVENTS` | `mr.*.*.ev.>` | 30 days, 10 GiB, file storage |
 * | `MR_NODES` | `mr.*.*.facts` | last 1 message per subject |
 * | `MR_SUBMISSION` | `mr.*.*.submit.>` | 30 days, 10 GiB |
 * | `MR_METRICS` | `mr.*.*.metrics` | 7 days, 5 GiB |
 * | KV `MR_DESIRED` | keys `site.<site>`, `node.<site>.<node>` | history 10 |
 * | KV `MR_ELECTION` | key `site.<site>` | TTL = election TTL (60 s) |
 * | KV `MR_ROLLOUT` | keys `<site>.<node>.<agent>` (rollout outcomes) | history 5 |
 *
 * Every stream has a duplicate window of 2 minutes (`Nats-Msg-Id` de-duplication). On a
 * clustered server `replicas` (1, 3 or 5) copies each of them; docs/cluster.md says what
 * each count survives.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type StreamConfig } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { isStreamNotFound } from "../src/nats/errors.ts";

const NS_PER_MS = 1_000_000;
const DAY_MS = 24 * 3600_000;
const GiB = 1024 ** 3;

/** Duplicate window of every Machine Room stream (≥ 2 minutes per DESIGN §4). */
export const DUPLICATE_WINDOW_MS = 120_000;

/** Options for {@linkcode ensureStreams}. */
export interface EnsureStreamsOptions {
  /** Max age of events and submissions. @default {30 days} */
  eventsMaxAgeMs?: number;
  /** Max age of metric samples. @default {7 days} */
  metricsMaxAgeMs?: number;
  /** TTL of the election bucket (the leader lease). @default {60 s} */
  electionTtlMs?: number;
  /** History kept per desired-state key. @default {10} */
  desiredHistory?: number;
  /** Replicas for clustered servers. @default {1} */
  replicas?: number;
  /** Storage: file (default) or memory (tests). */
  storage?: "file" | "memory";
}

/** What {@linkcode ensureStreams} did per stream/bucket. */
export type EnsureResult = Record<string, "created" | "updated" | "unchanged">;

/** The stream definitions for the given options. */
export function streamConfigs(
  o: EnsureStreamsOptions = {},
): (Partial<StreamConfig> & { name: string })[] {
  const common = {
    duplicate_window: DUPLICATE_WINDOW_MS * NS_PER_MS,
    num_replicas: o.replicas ?? 1,
    storage: (o.storage ?? "file") as StreamConfig["storage"],
  };
  const eventsAge = (o.eventsMaxAgeMs ?? 30 * DAY_MS) * NS_PER_MS;
  return [
    {
      name: "MR_EVENTS",
      subjects: ["mr.*.*.ev.>"],
      max_age: eventsAge,
      max_bytes: 10 * GiB,
      ...common,
    },
    {
      name: "MR_NODES",
      subjects: ["mr.*.*.facts"],
      max_msgs_per_subject: 1,
      ...common,
    },
    {
      name: "MR_SUBMISSION",
      subjects: ["mr.*.*.submit.>"],
      max_age: eventsAge,
      max_bytes: 10 * GiB,
      ...common,
    },
    {
      name: "MR_METRICS",
      subjects: ["mr.*.*.metrics"],
      max_age: (o.metricsMaxAgeMs ?? 7 * DAY_MS) * NS_PER_MS,
      max_bytes: 5 * GiB,
      ...common,
    },
  ];
}

/**
 * Creates (or updates to the current definition) the streams and KV buckets of DESIGN §4.
 * Safe to run any number of times.
 */
export async function ensureStreams(
  nc: NatsConnection,
  o: EnsureStreamsOptions = {},
): Promise<EnsureResult> {
  const jsm = await jetstreamManager(nc);
  const result: EnsureResult = {};
  for (const cfg of streamConfigs(o)) {
    const name = cfg.name;
    let exists = true;
    try {
      const info = await jsm.streams.info(name);
      const cur = info.config as unknown as Record<string, unknown>;
      const changed = Object.entries(cfg).some(([k, v]) =>
        JSON.stringify(cur[k]) !== JSON.stringify(v)
      );
      if (changed) {
        await jsm.streams.update(name, cfg);
        result[name] = "updated";
      } else result[name] = "unchanged";
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
      exists = false;
    }
    if (!exists) {
      await jsm.streams.add(cfg);
      result[name] = "created";
    }
  }
  const kvm = new Kvm(nc);
  const buckets: [string, Record<string, unknown>][] = [
    // direct gets: a node reads its own keys with the per-key DIRECT.GET subject
    ["MR_DESIRED", { history: o.desiredHistory ?? 10, allow_direct: true }],
    ["MR_ELECTION", { history: 1, ttl: o.electionTtlMs ?? 60_000 }],
    ["MR_ROLLOUT", { history: 5 }],
  ];
  const replicas = o.replicas ?? 1;
  for (const [name, opts] of buckets) {
    let existing: Awaited<ReturnType<typeof jsm.streams.info>> | null = null;
    try {
      existing = await jsm.streams.info(`KV_${name}`);
    } catch {
      existing = null;
    }
    if (existing) {
      // a bucket's stream is scaled like any stream (`mr-saas init --replicas 3` on an
      // existing single-server setup that became a cluster), and gains direct gets
      const want = {
        num_replicas: replicas,
        ...("allow_direct" in opts ? { allow_direct: true } : {}),
      };
      const cur = existing.config as unknown as Record<string, unknown>;
      if (Object.entries(want).some(([k, v]) => cur[k] !== v)) {
        await jsm.streams.update(`KV_${name}`, { ...existing.config, ...want });
        result[name] = "updated";
      } else result[name] = "unchanged";
      continue;
    }
    await kvm.create(
      name,
      {
        replicas,
        storage: o.storage === "memory" ? "memory" : "file",
        ...opts,
      } as Parameters<Kvm["create"]>[1],
    );
    result[name] = "created";
    if ("allow_direct" in opts) {
      const si = await jsm.streams.info(`KV_${name}`);
      if (!si.config.allow_direct) {
        await jsm.streams.update(`KV_${name}`, { ...si.config, allow_direct: true });
      }
    }
  }
  return result;
}
