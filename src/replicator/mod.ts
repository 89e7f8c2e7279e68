/**
 * Replicator: drains the durable spool to JetStream.
 *
 * - Publishes a batch (`batchSize`, default 256) pipelined — every `js.publish` of the
 *   batch is in flight at once — with `Nats-Msg-Id` = message id, then waits for acks.
 * - Deletes only acknowledged rows, and only the acknowledged *prefix* of the batch: on a
 *   failure the rest is retried from the first failed message (already-stored later
 *   messages are answered as duplicates by JetStream's dedupe window, so the stream holds
 *   each id once).
 * - Jittered exponential backoff after a failed round; `kick()` (call on reconnect)
 *   cancels the backoff. Appends wake an idle replicator (no polling).
 * - A failed publish is classified (classify.ts, on nats.js error classes): a message the
 *   server can never take (over `max_payload`, invalid subject) is parked at once in the
 *   spool's dead-letter table; one it refuses for this message (no stream — confirmed by
 *   asking `$JS.API.INFO` that JetStream itself answers —, permission, API rejection) is
 *   held back with its own backoff and parked after `maxAttempts` (and at least
 *   `minParkAgeMs` after its first failure). Held and parked
 *   messages never stop the messages behind them. Timeouts, disconnects, "no responders"
 *   while JetStream is down and a full stream are transient: the round backs off and
 *   nothing is counted. Parked messages are never deleted here (`machine-room spool
 *   dead-letters` lists, retries or purges them).
 *
 * @module
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { createLeanPublisher, type LeanPublisher } from "./publisher.ts";
import type { Logger } from "../log/logger.ts";
import { backoffDelay, jittered } from "../util/backoff.ts";
import type { DeadLetterReason, Spool, SpoolMessage } from "../spool/mod.ts";
import { classifyPublishError, errorText } from "./classify.ts";

/** Options for {@linkcode createReplicator}. */
export interface ReplicatorOptions {
  spool: Spool;
  /** The current JetStream client, `null` while disconnected. */
  js: () => JetStreamClient | null;
  /**
   * The current connection: when given, batches go through the lean publisher
   * (publisher.ts; one reply subscription per connection) and only a round after a failure
   * goes through `js.publish`.
   */
  nc?: () => NatsConnection | null;
  /** Prefix of the lean publisher's reply inbox (the node may subscribe only its own). @default {"_INBOX"} */
  inboxPrefix?: string;
  logger: Logger;
  /** Messages per pipelined batch. @default {256} */
  batchSize?: number;
  /** PubAck timeout per message. @default {5000} */
  ackTimeoutMs?: number;
  /** @default {{minMs: 250, maxMs: 30000}} */
  backoff?: { minMs: number; maxMs: number };
  /** Counted failures of one message before it is parked. @default {5} */
  maxAttempts?: number;
  /**
   * A counted failure parks a message only once its first failure is at least this old, so
   * a stream briefly missing (a cluster electing its leader) never parks. @default {30000}
   */
  minParkAgeMs?: number;
  /** Backoff of a held message between its attempts. @default {{minMs: 1000, maxMs: 60000}} */
  messageBackoff?: { minMs: number; maxMs: number };
  /** Clock. @default {Date.now} */
  now?: () => number;
}

/** Replicator counters. */
export interface ReplicatorStats {
  sent: number;
  failures: number;
  lastError?: string;
  lastSentAt?: number;
  inFlight: number;
  /** Messages moved to the spool's dead-letter table by this replicator. */
  parked: number;
  /** Messages held back after a failure of their own, waiting for their next attempt. */
  held: number;
  /** Acks that JetStream marked as duplicates (re-sends after a crash or partial failure). */
  duplicates: number;
}

/** The spool → JetStream pump. */
export interface Replicator {
  start(): void;
  /** Stops after the in-flight batch settles. */
  stop(): Promise<void>;
  /** Drains until the spool is empty or `timeoutMs` passes; resolves `true` when empty. */
  flush(timeoutMs: number): Promise<boolean>;
  stats(): ReplicatorStats;
  /** Wakes the replicator and resets the backoff (call on reconnect). */
  kick(): void;
}

interface Failing {
  attempts: number;
  firstSeen: number;
  lastSeen: number;
  nextAt: number;
  reason: DeadLetterReason;
  detail: string;
}

/** Creates a replicator; call `start()`. */
export function createReplicator(options: ReplicatorOptions): Replicator {
  const { spool, logger } = options;
  const batchSize = options.batchSize ?? 256;
  const ackTimeoutMs = options.ackTimeoutMs ?? 5000;
  const minMs = options.backoff?.minMs ?? 250;
  const maxMs = options.backoff?.maxMs ?? 30_000;
  const maxAttempts = options.maxAttempts ?? 5;
  const msgMinMs = options.messageBackoff?.minMs ?? 1000;
  const msgMaxMs = options.messageBackoff?.maxMs ?? 60_000;
  const now = options.now ?? Date.now;
  const minParkAgeMs = options.minParkAgeMs ?? 30_000;

  const s: ReplicatorStats = {
    sent: 0,
    failures: 0,
    inFlight: 0,
    parked: 0,
    held: 0,
    duplicates: 0,
  };
  const failing = new Map<string, Failing>();
  let running = false;
  let loop: Promise<void> | null = null;
  let wake: (() => void) | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inBackoff = false;
  let delayMs = 0;
  let unsubscribe: (() => void) | null = null;
  const drainWaiters = new Set<() => void>();

  function wakeUp() {
    const w = wake;
    wake = null;
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    w?.();
  }

  function sleep(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      wake = resolve;
      if (ms !== null) {
        timer = setTimeout(() => {
          timer = undefined;
          wake = null;
          resolve();
        }, ms);
      }
    });
  }

  function checkDrained() {
    if (drainWaiters.size > 0 && s.inFlight === 0 && spool.depth() === 0) {
      for (const w of drainWaiters) w();
      drainWaiters.clear();
    }
  }

  let lean: LeanPublisher | null = null;
  // after a failed round the next goes through js.publish, whose errors are precise
  // (a publish-permission refusal is a timeout for the lean publisher)
  let leanOk = true;

  function leanFor(): LeanPublisher | null {
    const nc = options.nc?.();
    if (!nc || !leanOk || nc.isClosed()) return null;
    if (lean?.nc !== nc) {
      lean?.close();
      lean = createLeanPublisher(nc, options.inboxPrefix);
    }
    return lean;
  }

  /** True when JetStream's API answers (so "no responders" means: no stream). */
  async function jetStreamAnswers(js: JetStreamClient): Promise<boolean> {
    const nc = options.nc?.();
    try {
      if (nc) {
        const r = await nc.request("$JS.API.INFO", "", { timeout: Math.min(ackTimeoutMs, 2000) });
        const body = JSON.parse(new TextDecoder().decode(r.data)) as { error?: unknown };
        return !body.error;
      }
      await js.jetstreamManager(true);
      return true;
    } catch {
      return false;
    }
  }

  function park(m: SpoolMessage, f: Failing): void {
    failing.delete(m.id);
    if (!spool.park(m.id, { ...f, count: f.attempts })) return;
    s.parked++;
    logger.error("replicator: message parked in the dead-letter table", {
      id: m.id,
      subject: m.subject,
      reason: f.reason,
      attempts: f.attempts,
      error: f.detail,
    });
  }

  /** Records a failure of the message itself; parks it at `maxAttempts` (or at once). */
  function fail(m: SpoolMessage, reason: DeadLetterReason, err: unknown, atOnce: boolean): void {
    const t = now();
    const f = failing.get(m.id) ??
      { attempts: 0, firstSeen: t, lastSeen: t, nextAt: t, reason, detail: "" };
    f.attempts++;
    f.lastSeen = t;
    f.reason = reason;
    f.detail = errorText(err);
    if (atOnce || (f.attempts >= maxAttempts && t - f.firstSeen >= minParkAgeMs)) {
      return park(m, f);
    }
    f.nextAt = t + backoffDelay(f.attempts - 1, { minMs: msgMinMs, maxMs: msgMaxMs });
    failing.set(m.id, f);
  }

  /** Ids of held messages not yet due, and when the first one is due. */
  function heldBack(): { ids: Set<string>; dueIn: number | null } {
    const t = now();
    const ids = new Set<string>();
    let due: number | null = null;
    for (const [id, f] of failing) {
      if (f.nextAt > t) {
        ids.add(id);
        due = due === null ? f.nextAt - t : Math.min(due, f.nextAt - t);
      }
    }
    s.held = failing.size;
    return { ids, dueIn: due };
  }

  /** Publishes a batch; false when a transient failure calls for a backoff of the round. */
  async function publishBatch(js: JetStreamClient, batch: SpoolMessage[]): Promise<boolean> {
    s.inFlight = batch.length;
    const fast = leanFor();
    const results = fast
      ? await fast.publishBatch(batch, ackTimeoutMs)
      : await Promise.allSettled(batch.map((m) => {
        const opts: { msgID: string; timeout: number; headers?: ReturnType<typeof natsHeaders> } = {
          msgID: m.id,
          timeout: ackTimeoutMs,
        };
        if (m.headers) {
          const h = natsHeaders();
          for (const [k, v] of Object.entries(m.headers)) h.set(k, v);
          opts.headers = h;
        }
        return js.publish(m.subject, m.payload, opts);
      }));
    s.inFlight = 0;
    const acked: string[] = [];
    let transient: unknown = null;
    let jsUp: boolean | null = null;
    let specific: unknown = null;
    for (let i = 0; i < batch.length; i++) {
      const r = results[i]!;
      const m = batch[i]!;
      if (r.status === "fulfilled") {
        // after a transient failure only the acknowledged prefix is deleted: the rest is
        // re-sent in order (JetStream answers the stored ones as duplicates)
        if (transient === null) {
          acked.push(m.id);
          failing.delete(m.id);
          if (r.value.duplicate) s.duplicates++;
        }
        continue;
      }
      const v = classifyPublishError(r.reason);
      if (v.kind === "ambiguous") {
        jsUp ??= await jetStreamAnswers(js);
        if (jsUp) {
          fail(m, "no_stream", r.reason, false);
          specific ??= r.reason;
        } else transient ??= r.reason;
      } else if (v.kind === "transient") transient ??= r.reason;
      else if (transient === null) {
        fail(m, v.reason, r.reason, v.kind === "park");
        specific ??= r.reason;
      }
    }
    if (acked.length) spool.ack(acked);
    s.sent += acked.length;
    if (acked.length) s.lastSentAt = Date.now();
    s.held = failing.size;
    const first = transient ?? specific;
    if (first !== null) {
      s.failures++;
      s.lastError = errorText(first);
      // js.publish reports errors precisely (a publish-permission refusal is a timeout
      // for the lean publisher)
      leanOk = false;
    } else leanOk = true;
    return transient === null;
  }

  async function run() {
    while (running) {
      const js = options.js();
      let batch: SpoolMessage[] = [];
      const held = heldBack();
      if (js) {
        try {
          batch = spool.next(batchSize, held.ids);
        } catch (e) {
          if (!running) break;
          s.lastError = String(e);
          logger.error("replicator: spool read failed", { error: String(e) });
        }
      }
      if (!js || batch.length === 0) {
        checkDrained();
        if (!running) break;
        await sleep(js ? held.dueIn : Math.max(delayMs, minMs));
        continue;
      }
      let ok = false;
      try {
        ok = await publishBatch(js, batch);
      } catch (e) {
        s.inFlight = 0;
        s.failures++;
        s.lastError = String(e);
      }
      if (ok) {
        delayMs = 0;
        checkDrained();
        continue;
      }
      if (!running) break;
      delayMs = delayMs === 0 ? minMs : Math.min(maxMs, delayMs * 2);
      const wait = jittered(delayMs);
      logger.warn("replicator: publish failed, backing off", {
        error: s.lastError,
        backoff_ms: wait,
      });
      inBackoff = true;
      await sleep(wait);
      inBackoff = false;
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      unsubscribe = spool.onAppend(() => {
        if (!inBackoff) wakeUp();
      });
      loop = run();
    },
    async stop() {
      running = false;
      unsubscribe?.();
      unsubscribe = null;
      wakeUp();
      await loop;
      loop = null;
      lean?.close();
      lean = null;
      for (const w of drainWaiters) w();
      drainWaiters.clear();
    },
    flush(timeoutMs) {
      return new Promise<boolean>((resolve) => {
        const done = () => {
          clearTimeout(t);
          drainWaiters.delete(done);
          resolve(spool.depth() === 0 && s.inFlight === 0);
        };
        const t = setTimeout(done, timeoutMs);
        drainWaiters.add(done);
        if (running && !inBackoff) wakeUp();
        else if (!running) done();
        checkDrained();
      });
    },
    stats() {
      return { ...s };
    },
    kick() {
      delayMs = 0;
      inBackoff = false;
      wakeUp();
    },
  };
}
