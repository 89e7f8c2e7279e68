/**
 * Site leader election on the KV bucket `MR_ELECTION` (DESIGN §4), whose bucket TTL is the
 * leader's lease.
 *
 * - A candidate `create`s `site.<site>` with its node id; that fails while the key exists.
 * - The leader `update`s the key with the last revision at ~0.75×TTL (jittered). A failed
 *   update ends leadership at once; so does not having renewed for 0.9×TTL (NATS outage),
 *   measured from the moment the last successful update was *sent*, so the node steps down
 *   before the server can expire its key and another node takes over.
 * - Followers watch the key and try `create` as soon as it is deleted, and on a jittered
 *   timer of ~TTL/4 because TTL expiry in nats-server 2.9 leaves no delete marker.
 *
 * Timers never throw; every NATS call has a timeout.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { type KV, Kvm, type KvWatchEntry } from "@nats-io/kv";
import type { Logger } from "../log/logger.ts";
import { isWrongLastSequence } from "../nats/errors.ts";
import { type Clock, systemClock, type TimerHandle } from "../util/clock.ts";

/** The election bucket (created by `mr-saas init` with the site's TTL). */
export const ELECTION_BUCKET = "MR_ELECTION";

/** The election key of a site. */
export function electionKey(site: string): string {
  return `site.${site}`;
}

/** Why leadership changed. */
export interface LeadershipChange {
  leader: boolean;
  /** For `leader: false`: why it was lost (renew failed, shutdown, …). */
  reason?: string;
  /** The key revision that won or was last held. */
  revision: number;
}

/** Options of {@linkcode createElection}. */
export interface ElectionOptions {
  site: string;
  node: string;
  /** The live connection or `null` while disconnected (polled on each step). */
  connection: () => NatsConnection | null;
  /**
   * Lease used when the bucket's own TTL cannot be read. The bucket TTL wins because the
   * server expires the key by it.
   * @default {60000}
   */
  ttlMs?: number;
  logger: Logger;
  /** @default {ELECTION_BUCKET} */
  bucket?: string;
  /** Random source for jitter (tests). @default {Math.random} */
  random?: () => number;
  /**
   * Clock: the lease is measured on its monotonic time, so setting the wall clock (NTP,
   * an operator, a VM resume) neither ends a lease early nor stretches it. @default {systemClock}
   */
  clock?: Clock;
}

/** A running candidate. */
export interface Election {
  /** Starts campaigning (returns at once). */
  start(): void;
  /**
   * Stops campaigning. With `release` (default true) a leader deletes its key so another
   * node takes over without waiting for the TTL.
   */
  stop(options?: { release?: boolean }): Promise<void>;
  isLeader(): boolean;
  /** The leader's node id as last seen on the key, or `null`. */
  leader(): string | null;
  /** Called on every change; returns an unsubscribe function. */
  onChange(listener: (change: LeadershipChange) => void): () => void;
  /** A snapshot for the health document. */
  status(): ElectionStatus;
}

/** The election's health section. */
export interface ElectionStatus {
  role: "leader" | "follower";
  leader: string | null;
  ttl_ms: number;
  revision: number;
  /** When this node last became leader or follower (ms epoch). */
  since: number;
  /** Last successful create/update (ms epoch) while leader. */
  last_renew: number | null;
  last_error: string | null;
  wins: number;
  losses: number;
}

const OP_TIMEOUT_CAP_MS = 5_000;

/** Creates a candidate for the leadership of `site`. */
export function createElection(o: ElectionOptions): Election {
  const log = o.logger.child({ component: "election", site: o.site });
  const key = electionKey(o.site);
  const bucket = o.bucket ?? ELECTION_BUCKET;
  const random = o.random ?? Math.random;
  const clock = o.clock ?? systemClock;
  const mono = () => clock.monotonic();
  let ttlMs = o.ttlMs ?? 60_000;

  let stopped = true;
  let leader = false;
  let revision = 0;
  let leaseBase = 0; // when the last successful write was sent (monotonic ms)
  let renewedAt = 0; // the same moment in wall time, for the health document
  let leaderName: string | null = null;
  let since = clock.now();
  let lastError: string | null = null;
  let wins = 0;
  let losses = 0;

  let timer: TimerHandle | undefined;
  let guard: TimerHandle | undefined;
  let stepping: Promise<void> | null = null;
  let pendingMs: number | null = null;

  let kvFor: { nc: NatsConnection; kv: Promise<KV> } | null = null;
  let watched: NatsConnection | null = null;
  let watcher: { stop(): void } | null = null;
  const listeners = new Set<(c: LeadershipChange) => void>();

  const jitter = (ms: number, spread = 0.2) => ms * (1 - spread / 2 + random() * spread);
  const opTimeout = () => Math.max(500, Math.min(OP_TIMEOUT_CAP_MS, ttlMs / 4));

  const emit = (c: LeadershipChange) => {
    for (const l of listeners) {
      try {
        l(c);
      } catch (err) {
        log.error("leadership listener failed", { error: String(err) });
      }
    }
  };

  const promote = (rev: number, base: number) => {
    leader = true;
    revision = rev;
    leaseBase = base;
    renewedAt = clock.now();
    leaderName = o.node;
    since = clock.now();
    wins++;
    log.info("won leadership", { revision: rev, ttl_ms: ttlMs });
    armGuard();
    emit({ leader: true, revision: rev });
  };

  const demote = (reason: string) => {
    if (!leader) return;
    leader = false;
    since = clock.now();
    losses++;
    if (leaderName === o.node) leaderName = null;
    clock.clearTimeout(guard);
    log.warn("lost leadership", { reason, revision });
    emit({ leader: false, reason, revision });
  };

  /** Steps down before the server can expire a key we failed to renew. */
  const armGuard = () => {
    clock.clearTimeout(guard);
    const at = leaseBase + ttlMs * 0.9;
    guard = clock.setTimeout(() => {
      if (leader && mono() >= leaseBase + ttlMs * 0.9) {
        demote(`not renewed within ${Math.round(ttlMs * 0.9)} ms`);
        schedule(jitter(ttlMs / 4));
      }
    }, Math.max(0, at - mono()));
  };

  const openKv = (nc: NatsConnection): Promise<KV> => {
    if (kvFor?.nc === nc) return kvFor.kv;
    const p = (async () => {
      const kv = await new Kvm(nc).open(bucket);
      try {
        const st = await kv.status();
        if (st.ttl > 0) {
          if (st.ttl !== ttlMs) {
            log.info("using the election bucket's TTL", {
              bucket_ttl_ms: st.ttl,
              config_ttl_ms: ttlMs,
            });
          }
          ttlMs = st.ttl;
        } else {
          log.error("election bucket has no TTL: a crashed leader would never be replaced", {
            bucket,
          });
        }
      } catch (err) {
        log.warn("cannot read the election bucket's TTL", { error: String(err) });
      }
      return kv;
    })();
    kvFor = { nc, kv: p };
    p.catch(() => {
      if (kvFor?.kv === p) kvFor = null;
    });
    return p;
  };

  const onEntry = (e: KvWatchEntry) => {
    if (e.key !== key) return;
    if (e.operation === "PUT") {
      const who = e.string();
      leaderName = who;
      if (leader && who !== o.node) demote(`key taken by "${who}"`);
      else if (leader && who === o.node && e.revision > revision) revision = e.revision;
    } else {
      leaderName = null;
      if (leader && e.revision > revision) demote("key deleted");
      // Someone released or purged the key: campaign now (small jitter to spread the herd).
      if (!leader) schedule(random() * 100);
    }
  };

  const ensureWatch = async (nc: NatsConnection, kv: KV) => {
    if (watched === nc) return;
    watcher?.stop();
    watched = nc;
    const it = await kv.watch({ key });
    watcher = it;
    (async () => {
      try {
        for await (const e of it) onEntry(e);
      } catch (err) {
        log.debug("election watch ended", { error: String(err) });
      }
      if (watched === nc) watched = null; // re-established on the next step
    })();
  };

  const step = async () => {
    const nc = o.connection();
    if (!nc || nc.isClosed()) {
      lastError = "not connected";
      return schedule(jitter(Math.min(ttlMs / 4, 2_000)));
    }
    let kv: KV;
    try {
      kv = await openKv(nc);
      await ensureWatch(nc, kv);
    } catch (err) {
      lastError = `cannot open bucket "${bucket}": ${(err as Error).message}`;
      log.debug("election bucket unavailable", { error: lastError });
      return schedule(jitter(Math.min(ttlMs / 4, 5_000)));
    }
    if (stopped) return;
    const base = mono();
    if (leader) {
      try {
        const rev = await kv.update(key, o.node, revision, opTimeout());
        if (!leader || stopped) return;
        revision = rev;
        leaseBase = base;
        renewedAt = clock.now();
        lastError = null;
        armGuard();
        return schedule(jitter(ttlMs * 0.75 - (mono() - base), 0.1));
      } catch (err) {
        lastError = `renew failed: ${(err as Error).message}`;
        demote(lastError);
        return schedule(jitter(ttlMs / 4));
      }
    }
    try {
      const rev = await kv.create(key, o.node);
      if (stopped) {
        await kv.delete(key, { previousSeq: rev }).catch(() => {});
        return;
      }
      lastError = null;
      promote(rev, base);
      return schedule(jitter(ttlMs * 0.75 - (mono() - base), 0.1));
    } catch (err) {
      const msg = (err as Error).message;
      if (!isWrongLastSequence(err)) {
        lastError = `campaign failed: ${msg}`;
        log.debug("campaign failed", { error: msg });
      } else lastError = null;
      try {
        const e = await kv.get(key);
        leaderName = e?.operation === "PUT" ? e.string() || null : null;
        // Our own key (a renewal whose ack was lost, or a restart right after a crash):
        // nobody else can lead while it exists, so take it back instead of waiting a TTL.
        if (e && e.operation === "PUT" && leaderName === o.node && !stopped) {
          const again = mono();
          const rev = await kv.update(key, o.node, e.revision, opTimeout());
          promote(rev, again);
          return schedule(jitter(ttlMs * 0.75 - (mono() - again), 0.1));
        }
      } catch { /* next time */ }
      return schedule(jitter(ttlMs / 4));
    }
  };

  function schedule(ms: number): void {
    if (stopped) return;
    clock.clearTimeout(timer);
    if (stepping) {
      pendingMs = pendingMs === null ? ms : Math.min(pendingMs, ms);
      return;
    }
    timer = clock.setTimeout(run, Math.max(0, ms));
  }

  function run(): void {
    if (stopped || stepping) return;
    stepping = step()
      .catch((err) => {
        lastError = String(err);
        log.error("election step failed", { error: lastError });
        schedule(jitter(ttlMs / 4));
      })
      .finally(() => {
        stepping = null;
        const ms = pendingMs;
        pendingMs = null;
        if (ms !== null && !stopped) {
          clock.clearTimeout(timer);
          timer = clock.setTimeout(run, Math.max(0, ms));
        }
      });
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      schedule(0);
    },
    async stop(opts = {}) {
      if (stopped) return;
      stopped = true;
      clock.clearTimeout(timer);
      clock.clearTimeout(guard);
      await stepping?.catch(() => {});
      watcher?.stop();
      watcher = null;
      watched = null;
      if (leader) {
        const release = opts.release ?? true;
        const nc = o.connection();
        if (release && nc && !nc.isClosed()) {
          try {
            const kv = await openKv(nc);
            await kv.delete(key, { previousSeq: revision });
          } catch (err) {
            log.warn("cannot release leadership", { error: String(err) });
          }
        }
        demote("shutdown");
      }
    },
    isLeader: () => leader,
    leader: () => leaderName,
    onChange(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    status: () => ({
      role: leader ? "leader" : "follower",
      leader: leaderName,
      ttl_ms: ttlMs,
      revision,
      since,
      last_renew: leader ? renewedAt : null,
      last_error: lastError,
      wins,
      losses,
    }),
  };
}
