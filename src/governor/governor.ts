/**
 * Fleet-wide semaphores on JetStream (DESIGN §4), the way Choria's governors work:
 * governor `<name>` is the stream `MR_GOV_<name>` on subject `mr.gov.<name>` with
 * `max_msgs = capacity`, `max_age = lease` and `discard: new`. Taking a slot is a publish
 * (the server refuses the capacity+1-th message) and the stream sequence is the ticket;
 * releasing deletes that message; a holder that crashes loses its slot when its message
 * ages out after the lease.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import {
  DiscardPolicy,
  jetstream,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { isId } from "../util/ids.ts";
import { jittered } from "../util/backoff.ts";
import {
  hasJsCode,
  isJetStreamNotEnabled,
  isNoMessageFound,
  isNoResponders,
  isStreamFull,
  isStreamNameInUse,
  isStreamNotFound,
  JsCode,
} from "../nats/errors.ts";

const NS_PER_MS = 1_000_000;

/** Default lease: how long a slot is held before it expires if never released. */
export const DEFAULT_LEASE_MS = 10 * 60_000;

/** The stream name of governor `name`. */
export function governorStream(name: string): string {
  return `MR_GOV_${name}`;
}

/** The subject of governor `name`. */
export function governorSubject(name: string): string {
  return `mr.gov.${name}`;
}

/** A held slot. */
export interface GovernorLease {
  name: string;
  /** Stream sequence of the slot's message: the ticket `release` deletes. */
  seq: number;
  owner: string;
  /** When the slot was taken (ms epoch). */
  acquiredAt: number;
  /** When the server will expire the slot if it is never released (ms epoch). */
  expiresAt: number;
}

/** A current holder, as listed by {@linkcode GovernorClient.holders}. */
export interface GovernorHolder {
  seq: number;
  owner: string;
  /** When the slot was taken (ms epoch, from the stream). */
  since: number;
}

/** Options of {@linkcode GovernorClient.acquire}. */
export interface AcquireOptions {
  /** Who takes the slot (recorded in the message; e.g. `"<node>/<agent>"`). */
  owner: string;
  /** Slots of the governor; creates or resizes the stream. Without it the stream must exist. */
  capacity?: number;
  /** Lease (slot expiry) in ms. @default {DEFAULT_LEASE_MS} (10 min) */
  leaseMs?: number;
  /** How long to wait for a free slot; 0 tries once. @default {0} */
  timeoutMs?: number;
  /** Aborts waiting (resolves `null`). */
  signal?: AbortSignal;
  /** First backoff between attempts (jittered, doubling up to `maxBackoffMs`). @default {100} */
  minBackoffMs?: number;
  /** @default {2000} */
  maxBackoffMs?: number;
}

/** A governor client bound to one NATS connection. */
export interface GovernorClient {
  /**
   * Takes a slot of governor `name`, waiting with jittered backoff up to `timeoutMs`.
   * Resolves `null` when no slot became free in time.
   */
  acquire(name: string, options: AcquireOptions): Promise<GovernorLease | null>;
  /** Frees a slot; false when it had already expired or been released. */
  release(lease: Pick<GovernorLease, "name" | "seq">): Promise<boolean>;
  /** The current holders of governor `name` (empty when it does not exist). */
  holders(name: string): Promise<GovernorHolder[]>;
  /** Capacity and lease of governor `name`, or `null` if it does not exist. */
  info(name: string): Promise<{ capacity: number; leaseMs: number; held: number } | null>;
  /**
   * Creates governor `name` or updates its capacity/lease; returns what it did.
   * Shrinking below the current holders is allowed: new acquisitions wait until enough leave.
   */
  ensure(
    name: string,
    capacity: number,
    leaseMs?: number,
  ): Promise<"created" | "updated" | "unchanged">;
}

/** Raised for an unusable governor name or capacity. */
export class GovernorError extends Error {
  override name = "GovernorError";
  constructor(message: string, readonly governor: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Checks a governor name (same rule as site/node/agent identifiers). */
export function validateGovernorName(name: string): void {
  if (!isId(name)) {
    throw new TypeError(
      `Invalid governor name: "${name}" (expected ^[a-z0-9][a-z0-9_-]{0,62}$)`,
    );
  }
}

/** "maximum messages exceeded" (store failed, 10077) and friends: the governor is full. */
function isFull(err: unknown): boolean {
  return isStreamFull(err) || hasJsCode(err, JsCode.MessageExceedsMaximum);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * A governor client on a NATS connection.
 *
 * @example Run something while holding one of 2 slots
 * ```ts
 * const gov = createGovernorClient(nc);
 * const lease = await gov.acquire("rollout", { owner: "n1", capacity: 2, timeoutMs: 60_000 });
 * if (!lease) throw new Error("no slot within 60 s");
 * try { await upgrade(); } finally { await gov.release(lease); }
 * ```
 */
export function createGovernorClient(nc: NatsConnection): GovernorClient {
  let jsmP: Promise<JetStreamManager> | null = null;
  const jsm = () => (jsmP ??= jetstreamManager(nc).catch((err) => {
    jsmP = null;
    throw err;
  }));
  const js = jetstream(nc);

  const info: GovernorClient["info"] = async (name) => {
    validateGovernorName(name);
    try {
      const si = await (await jsm()).streams.info(governorStream(name));
      return {
        capacity: si.config.max_msgs,
        leaseMs: Math.round(si.config.max_age / NS_PER_MS),
        held: si.state.messages,
      };
    } catch (err) {
      if (isStreamNotFound(err)) return null;
      throw err;
    }
  };

  const ensure: GovernorClient["ensure"] = async (name, capacity, leaseMs = DEFAULT_LEASE_MS) => {
    validateGovernorName(name);
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new GovernorError(
        `Invalid capacity for governor "${name}": ${capacity} (expected an integer ≥ 1)`,
        name,
      );
    }
    if (!Number.isFinite(leaseMs) || leaseMs < 1000) {
      throw new GovernorError(
        `Invalid lease for governor "${name}": ${leaseMs} ms (expected ≥ 1000)`,
        name,
      );
    }
    const m = await jsm();
    const cfg = {
      name: governorStream(name),
      subjects: [governorSubject(name)],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.New,
      max_msgs: capacity,
      max_age: leaseMs * NS_PER_MS,
      num_replicas: 1,
      // Direct get with next_by_subj lists holders without walking deleted sequences.
      allow_direct: true,
      // Slots are never published with a msg id; a short window keeps the server light.
      duplicate_window: Math.min(leaseMs, 60_000) * NS_PER_MS,
    };
    try {
      const si = await m.streams.info(cfg.name);
      if (
        si.config.max_msgs === cfg.max_msgs && si.config.max_age === cfg.max_age &&
        si.config.allow_direct
      ) {
        return "unchanged";
      }
      await m.streams.update(cfg.name, { ...si.config, ...cfg });
      return "updated";
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
    }
    try {
      await m.streams.add(cfg);
      return "created";
    } catch (err) {
      // Another node created it at the same moment.
      if (isStreamNameInUse(err)) return "unchanged";
      throw err;
    }
  };

  const noStreamAnswers = (err: unknown): boolean =>
    isNoResponders(err) || isJetStreamNotEnabled(err);

  const tryOnce = async (
    name: string,
    o: AcquireOptions,
    leaseMs: number,
  ): Promise<GovernorLease | "full"> => {
    const body = JSON.stringify({ owner: o.owner, at: new Date().toISOString() });
    try {
      const ack = await js.publish(governorSubject(name), body, {
        expect: { streamName: governorStream(name) },
        timeout: 5_000,
      });
      const now = Date.now();
      return { name, seq: ack.seq, owner: o.owner, acquiredAt: now, expiresAt: now + leaseMs };
    } catch (err) {
      if (isFull(err)) return "full";
      throw err;
    }
  };

  const acquire: GovernorClient["acquire"] = async (name, o) => {
    validateGovernorName(name);
    if (!o.owner) throw new TypeError("Governor owner must not be empty");
    let leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
    if (o.capacity !== undefined) await ensure(name, o.capacity, leaseMs);
    else {
      const i = await info(name);
      if (!i) {
        throw new GovernorError(
          `Governor "${name}" does not exist (give a capacity to create it)`,
          name,
        );
      }
      leaseMs = i.leaseMs;
    }
    const deadline = Date.now() + (o.timeoutMs ?? 0);
    let backoff = o.minBackoffMs ?? 100;
    const maxBackoff = o.maxBackoffMs ?? 2_000;
    for (;;) {
      if (o.signal?.aborted) return null;
      let r: GovernorLease | "full";
      try {
        r = await tryOnce(name, o, leaseMs);
      } catch (err) {
        // The stream vanished (deleted by an operator): recreate it if we know the capacity.
        // (nats.js reports "no responders" on a JetStream publish as JetStreamNotEnabled;
        // it also happens for a moment while another node is still creating the stream)
        if (isStreamNotFound(err) || noStreamAnswers(err)) {
          if (o.capacity === undefined) throw err;
          await ensure(name, o.capacity, leaseMs);
          r = "full";
        } else throw err;
      }
      if (r !== "full") return r;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      // Full jitter between backoff/2 and backoff, doubling, never past the deadline.
      const wait = Math.min(left, jittered(backoff));
      await sleep(wait, o.signal);
      backoff = Math.min(maxBackoff, backoff * 2);
    }
  };

  const release: GovernorClient["release"] = async (lease) => {
    validateGovernorName(lease.name);
    try {
      return await (await jsm()).streams.deleteMessage(
        governorStream(lease.name),
        lease.seq,
        false,
      );
    } catch (err) {
      if (
        isStreamNotFound(err) || isNoMessageFound(err) ||
        hasJsCode(err, JsCode.MessageDeleteFailed)
      ) {
        return false;
      }
      throw err;
    }
  };

  const holders: GovernorClient["holders"] = async (name) => {
    validateGovernorName(name);
    const m = await jsm();
    let si;
    try {
      si = await m.streams.info(governorStream(name));
    } catch (err) {
      if (isStreamNotFound(err)) return [];
      throw err;
    }
    const out: GovernorHolder[] = [];
    let seq = si.state.first_seq;
    while (si.state.messages > 0 && seq <= si.state.last_seq) {
      let sm;
      try {
        sm = await m.direct.getMessage(governorStream(name), {
          seq,
          next_by_subj: governorSubject(name),
        });
      } catch (err) {
        if (isNoMessageFound(err) || isStreamNotFound(err)) break;
        throw err;
      }
      if (!sm) break;
      let owner = "";
      try {
        owner = String((sm.json() as { owner?: unknown }).owner ?? "");
      } catch { /* not ours */ }
      out.push({ seq: sm.seq, owner, since: sm.time.getTime() });
      seq = sm.seq + 1;
    }
    return out;
  };

  return { acquire, release, holders, info, ensure };
}
