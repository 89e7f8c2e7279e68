/**
 * Fleet-wide semaphores on JetStream (DESIGN §4, docs/fleet.md "Governors"), holder-scoped:
 * governor `<name>` is the stream `MR_GOV_<name>` on `mrgov.<name>.<site>.<node>`, one
 * message per holder (`max_msgs_per_subject: 1`), `max_msgs = capacity`, `discard: new`,
 * `max_age = lease`.
 *
 * - **acquire**: publish on the holder's own subject with "expected last subject sequence
 *   0" (the server refuses it when the governor is full, or when this node already holds
 *   a slot); the stream sequence is the ticket.
 * - **renew**: publish again on the own subject expecting the ticket (replaces the message,
 *   so the lease starts over).
 * - **release**: a node cannot delete messages (NATS cannot limit a delete to its own), so
 *   it asks the mediator (`mr.<site>.<node>.gov.release`, {@linkcode startGovernorMediator}),
 *   which deletes the ticket only if it is the requester's own subject. Without a mediator,
 *   a privileged connection deletes directly; a node's slot then ages out after the lease.
 * - **crash**: the message ages out after the lease.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import {
  isClusterUnavailable,
  isJetStreamNotEnabled,
  isNoMessageFound,
  isNoResponders,
  isPermissionViolation,
  isStreamFull,
  isStreamNameInUse,
  isStreamNotFound,
  isTimeout,
  isWrongLastSequence,
} from "../nats/errors.ts";
import {
  DEFAULT_LEASE_MS,
  GovernorError,
  type GovernorHolderId,
  governorStream,
  governorStreamConfig,
  type MediatorOp,
  mediatorSubject,
  NS_PER_MS,
  slotSubject,
  validateGovernorName,
  validateLimits,
} from "./wire.ts";
import { jittered } from "../util/backoff.ts";

/** A held slot. */
export interface GovernorLease {
  name: string;
  /** Stream sequence of the slot's message: the ticket `release` deletes. */
  seq: number;
  owner: string;
  /** `<site>.<node>` of the holder. */
  holder: string;
  /** When the slot was taken or last renewed (ms epoch). */
  acquiredAt: number;
  /** When the server will expire the slot if it is never released or renewed (ms epoch). */
  expiresAt: number;
}

/** A current holder, as listed by {@linkcode GovernorClient.holders}. */
export interface GovernorHolder {
  seq: number;
  owner: string;
  /** `<site>.<node>` (from the slot subject). */
  holder: string;
  /** When the slot was taken (ms epoch, from the stream). */
  since: number;
}

/** Capacity, lease and current holders count. */
export interface GovernorInfo {
  capacity: number;
  leaseMs: number;
  held: number;
}

/** Options of {@linkcode GovernorClient.acquire}. */
export interface AcquireOptions {
  /** Who takes the slot (recorded in the message; e.g. `"<node>/<agent>"`). */
  owner: string;
  /**
   * Slots of the governor. When it does not exist it is created (by the mediator, or
   * directly on a privileged connection); an existing governor keeps the vendor's capacity
   * on a node's connection. Without it the governor must exist.
   */
  capacity?: number;
  /** Lease (slot expiry) in ms for a governor this call creates. @default {DEFAULT_LEASE_MS} */
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

/** Why `release` did not free anything. */
export type ReleaseResult = { released: true } | {
  released: false;
  /** `gone`: the slot was no longer there (expired or evicted); `unreachable`: no one could delete it (it ages out). */
  reason: "gone" | "unreachable";
};

/** A governor client bound to one NATS connection. */
export interface GovernorClient {
  /**
   * Takes a slot of governor `name`, waiting with jittered backoff up to `timeoutMs`.
   * Resolves `null` when no slot became free in time. Needs a holder identity.
   */
  acquire(name: string, options: AcquireOptions): Promise<GovernorLease | null>;
  /** Renews a held slot (its lease starts over); `null` when the slot was lost. */
  renew(lease: GovernorLease): Promise<GovernorLease | null>;
  /** Frees a slot; false when it had already expired or been released. */
  release(lease: Pick<GovernorLease, "name" | "seq">): Promise<boolean>;
  /** {@linkcode release} with the reason. */
  releaseDetailed(lease: Pick<GovernorLease, "name" | "seq">): Promise<ReleaseResult>;
  /** The current holders of governor `name` (empty when it does not exist). */
  holders(name: string): Promise<GovernorHolder[]>;
  /** Capacity and lease of governor `name`, or `null` if it does not exist. */
  info(name: string): Promise<GovernorInfo | null>;
  /**
   * Creates governor `name` or updates its capacity/lease (vendor side: needs stream
   * permissions); returns what it did. Shrinking below the current holders is allowed: new
   * acquisitions wait until enough leave. `options.replicas` copies the stream on a
   * clustered server (a new governor gets 1 by default, an existing one keeps its count).
   */
  ensure(
    name: string,
    capacity: number,
    leaseMs?: number,
    options?: { replicas?: number },
  ): Promise<"created" | "updated" | "unchanged">;
}

/** Options of {@linkcode createGovernorClient}. */
export interface GovernorClientOptions {
  /** The holder identity (a node's `<site>.<node>`). Needed to acquire; makes requests go to the mediator first. */
  holder?: GovernorHolderId;
  /** Timeout of one NATS request. @default {5000} */
  requestTimeoutMs?: number;
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

const dec = new TextDecoder();

/**
 * A governor client on a NATS connection.
 *
 * @example Run something while holding one of 2 slots
 * ```ts
 * const gov = createGovernorClient(nc, { holder: { site: "s1", node: "n1" } });
 * const lease = await gov.acquire("rollout", { owner: "n1", capacity: 2, timeoutMs: 60_000 });
 * if (!lease) throw new Error("no slot within 60 s");
 * try { await upgrade(); } finally { await gov.release(lease); }
 * ```
 */
export function createGovernorClient(
  nc: NatsConnection,
  options: GovernorClientOptions = {},
): GovernorClient {
  const holder = options.holder;
  const timeout = options.requestTimeoutMs ?? 5_000;
  let jsmP: Promise<JetStreamManager> | null = null;
  const jsm = () => (jsmP ??= jetstreamManager(nc, { timeout }).catch((err) => {
    jsmP = null;
    throw err;
  }));
  const js = jetstream(nc, { timeout });
  const leases = new Map<string, { leaseMs: number; until: number }>();

  /** Asks the mediator; `undefined` when none answers (or no holder identity). */
  const mediator = async <T>(op: MediatorOp, body: unknown): Promise<T | undefined> => {
    if (!holder) return undefined;
    let reply;
    try {
      reply = await nc.request(mediatorSubject(holder, op), JSON.stringify(body), { timeout });
    } catch (err) {
      if (isNoResponders(err)) return undefined;
      throw err;
    }
    const r = JSON.parse(dec.decode(reply.data)) as T & { error?: { message: string } };
    if (r.error) {
      throw new GovernorError(r.error.message, String((body as { governor: string }).governor));
    }
    return r;
  };

  const directInfo = async (name: string): Promise<GovernorInfo | null> => {
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

  const info: GovernorClient["info"] = async (name) => {
    validateGovernorName(name);
    const r = await mediator<{ info: GovernorInfo | null }>("info", { governor: name });
    return r ? r.info : await directInfo(name);
  };

  const ensure: GovernorClient["ensure"] = async (
    name,
    capacity,
    leaseMs = DEFAULT_LEASE_MS,
    options = {},
  ) => {
    validateGovernorName(name);
    validateLimits(name, capacity, leaseMs);
    const m = await jsm();
    const cfg = governorStreamConfig(name, capacity, leaseMs, options.replicas);
    try {
      const si = await m.streams.info(cfg.name);
      const c = si.config;
      if (
        c.max_msgs === cfg.max_msgs && c.max_age === cfg.max_age && c.allow_direct &&
        c.max_msgs_per_subject === 1 && c.subjects?.[0] === cfg.subjects![0] &&
        (options.replicas === undefined || c.num_replicas === options.replicas)
      ) {
        return "unchanged";
      }
      await m.streams.update(cfg.name, {
        ...c,
        ...cfg,
        num_replicas: options.replicas ?? c.num_replicas,
      });
      return "updated";
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
    }
    try {
      await m.streams.add(cfg);
      return "created";
    } catch (err) {
      if (isStreamNameInUse(err)) return "unchanged"; // created meanwhile
      throw err;
    }
  };

  /** Makes sure the governor exists: the mediator creates it (never resizes), else directly. */
  const present = async (name: string, capacity: number, leaseMs: number): Promise<void> => {
    validateLimits(name, capacity, leaseMs);
    const r = await mediator<{ info: GovernorInfo }>("ensure", {
      governor: name,
      capacity,
      lease_ms: leaseMs,
    });
    if (r) return;
    try {
      await ensure(name, capacity, leaseMs);
    } catch (err) {
      if (isPermissionViolation(err)) {
        throw new GovernorError(
          `Governor "${name}" does not exist and this connection may not create it ` +
            `(run the mediator, mr-saas serve, or mr-saas governor add ${name})`,
          name,
          { cause: err },
        );
      }
      throw err;
    }
  };

  const publishSlot = async (
    name: string,
    owner: string,
    lastSeq: number,
  ): Promise<number | "full" | "missing"> => {
    if (!holder) throw new TypeError("A governor holder (site and node) is needed to take a slot");
    try {
      const ack = await js.publish(
        slotSubject(name, holder),
        JSON.stringify({ owner, at: new Date().toISOString() }),
        { expect: { streamName: governorStream(name), lastSubjectSequence: lastSeq }, timeout },
      );
      return ack.seq;
    } catch (err) {
      // discard new at max_msgs (10077), or this node already holds a slot (10071)
      if (isStreamFull(err) || isWrongLastSequence(err)) return "full";
      // a clustered governor electing a new stream leader (its server died) answers
      // nothing for a few seconds: wait like a full governor until the deadline
      if (isTimeout(err) || isClusterUnavailable(err)) return "full";
      // no stream listens on the subject: nats.js reports "no responders"
      if (isStreamNotFound(err) || isNoResponders(err) || isJetStreamNotEnabled(err)) {
        return "missing";
      }
      throw err;
    }
  };

  const acquire: GovernorClient["acquire"] = async (name, o) => {
    validateGovernorName(name);
    if (!o.owner) throw new TypeError("Governor owner must not be empty");
    const leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
    const deadline = Date.now() + (o.timeoutMs ?? 0);
    for (let done = o.capacity === undefined; !done;) {
      try {
        await present(name, o.capacity!, leaseMs);
        done = true;
      } catch (err) {
        // the stream info/create of a cluster that is electing a leader
        if (!(isTimeout(err) || isClusterUnavailable(err)) || Date.now() >= deadline) throw err;
        await sleep(jittered(500), o.signal);
      }
    }
    let backoff = o.minBackoffMs ?? 100;
    const maxBackoff = o.maxBackoffMs ?? 2_000;
    let lease: number | null = null;
    const cached = leases.get(name);
    if (cached && cached.until > Date.now()) lease = cached.leaseMs;
    for (;;) {
      if (o.signal?.aborted) return null;
      const r = await publishSlot(name, o.owner, 0);
      if (typeof r === "number") {
        if (lease === null) {
          // the governor's own lease (the vendor's), remembered for a minute
          lease = (await info(name).catch(() => null))?.leaseMs ?? leaseMs;
          leases.set(name, { leaseMs: lease, until: Date.now() + 60_000 });
        }
        const now = Date.now();
        return {
          name,
          seq: r,
          owner: o.owner,
          holder: `${holder!.site}.${holder!.node}`,
          acquiredAt: now,
          expiresAt: now + lease,
        };
      }
      if (r === "missing") {
        if (o.capacity === undefined) {
          throw new GovernorError(
            `Governor "${name}" does not exist (give a capacity to create it)`,
            name,
          );
        }
        // deleted by an operator, or still being created by another node
        await present(name, o.capacity, leaseMs);
      }
      const left = deadline - Date.now();
      if (left <= 0) return null;
      // full jitter between backoff/2 and backoff, doubling, never past the deadline
      await sleep(Math.min(left, jittered(backoff)), o.signal);
      backoff = Math.min(maxBackoff, backoff * 2);
    }
  };

  const renew: GovernorClient["renew"] = async (lease) => {
    const r = await publishSlot(lease.name, lease.owner, lease.seq);
    if (typeof r !== "number") return null;
    const now = Date.now();
    return {
      ...lease,
      seq: r,
      acquiredAt: now,
      expiresAt: now + (lease.expiresAt - lease.acquiredAt),
    };
  };

  const releaseDetailed: GovernorClient["releaseDetailed"] = async (lease) => {
    validateGovernorName(lease.name);
    const r = await mediator<{ released: boolean }>("release", {
      governor: lease.name,
      seq: lease.seq,
    });
    if (r) return r.released ? { released: true } : { released: false, reason: "gone" };
    try {
      const ok = await (await jsm()).streams.deleteMessage(
        governorStream(lease.name),
        lease.seq,
        false,
      );
      return ok ? { released: true } : { released: false, reason: "gone" };
    } catch (err) {
      if (isStreamNotFound(err) || isNoMessageFound(err)) {
        return { released: false, reason: "gone" };
      }
      if (isPermissionViolation(err)) return { released: false, reason: "unreachable" };
      throw err;
    }
  };

  const holders: GovernorClient["holders"] = async (name) => {
    validateGovernorName(name);
    const r = await mediator<{ holders: GovernorHolder[] }>("holders", { governor: name });
    return r ? r.holders : await listHolders(await jsm(), name);
  };

  return {
    acquire,
    renew,
    release: async (l) => (await releaseDetailed(l)).released,
    releaseDetailed,
    holders,
    info,
    ensure,
  };
}

/** The holders of a governor, read with direct gets (privileged: the mediator, vendor tools). */
export async function listHolders(m: JetStreamManager, name: string): Promise<GovernorHolder[]> {
  let si;
  try {
    si = await m.streams.info(governorStream(name));
  } catch (err) {
    if (isStreamNotFound(err)) return [];
    throw err;
  }
  const out: GovernorHolder[] = [];
  let seq = si.state.first_seq;
  const prefix = `mrgov.${name}.`;
  while (si.state.messages > 0 && seq <= si.state.last_seq) {
    let sm;
    try {
      sm = await m.direct.getMessage(governorStream(name), { seq, next_by_subj: `${prefix}*.*` });
    } catch (err) {
      if (isNoMessageFound(err)) break;
      throw err;
    }
    if (!sm) break;
    let owner = "";
    try {
      owner = String((sm.json() as { owner?: unknown }).owner ?? "");
    } catch { /* not ours */ }
    out.push({
      seq: sm.seq,
      owner,
      holder: sm.subject.slice(prefix.length),
      since: sm.time.getTime(),
    });
    seq = sm.seq + 1;
  }
  return out;
}
