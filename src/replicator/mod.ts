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
 * - A message whose publish fails with a *permanent-looking* error (no stream for the
 *   subject = "no responders" / "jetstream is not enabled", permission violation, JetStream API rejection) is retried
 *   `maxAttempts` times (default 20, ~minutes with backoff) and then dropped from the spool
 *   with an `error` log line naming the id and subject, counted in `stats().parked`, so it
 *   cannot block the queue forever. Timeouts / disconnects are never counted.
 *
 * @module
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { createLeanPublisher, type LeanPublisher } from "./publisher.ts";
import type { Logger } from "../log/logger.ts";
import type { Spool, SpoolMessage } from "../spool/mod.ts";
import { jittered } from "../util/backoff.ts";

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
  /** Permanent failures tolerated per message before it is dropped. @default {20} */
  maxAttempts?: number;
}

/** Replicator counters. */
export interface ReplicatorStats {
  sent: number;
  failures: number;
  lastError?: string;
  lastSentAt?: number;
  inFlight: number;
  /** Messages dropped after `maxAttempts` permanent failures. */
  parked: number;
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

function isPermanent(err: unknown): boolean {
  const name = (err as { name?: string })?.name ?? "";
  const msg = String((err as { message?: string })?.message ?? err).toLowerCase();
  if (name === "TimeoutError" || msg.includes("timeout")) return false;
  if (msg.includes("closed") || msg.includes("disconnect") || msg.includes("draining")) {
    return false;
  }
  return name === "NoRespondersError" || name === "PermissionViolationError" ||
    name === "JetStreamApiError" || msg.includes("no responders") ||
    msg.includes("permission") || msg.includes("jetstream is not enabled");
}

/** Creates a replicator; call `start()`. */
export function createReplicator(options: ReplicatorOptions): Replicator {
  const { spool, logger } = options;
  const batchSize = options.batchSize ?? 256;
  const ackTimeoutMs = options.ackTimeoutMs ?? 5000;
  const minMs = options.backoff?.minMs ?? 250;
  const maxMs = options.backoff?.maxMs ?? 30_000;
  const maxAttempts = options.maxAttempts ?? 20;

  const s: ReplicatorStats = { sent: 0, failures: 0, inFlight: 0, parked: 0, duplicates: 0 };
  const attempts = new Map<string, number>();
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
    const parked: SpoolMessage[] = [];
    let firstError: unknown = null;
    for (let i = 0; i < batch.length; i++) {
      const r = results[i]!;
      const m = batch[i]!;
      if (r.status === "fulfilled") {
        if (firstError === null) {
          acked.push(m.id);
          attempts.delete(m.id);
          if (r.value.duplicate) s.duplicates++;
        }
        continue;
      }
      if (firstError === null) firstError = r.reason;
      if (isPermanent(r.reason)) {
        const n = (attempts.get(m.id) ?? 0) + 1;
        attempts.set(m.id, n);
        if (n >= maxAttempts && firstError === r.reason) {
          // only the head of the failure can be dropped without breaking the prefix rule
          parked.push(m);
          firstError = null;
          attempts.delete(m.id);
        }
      }
    }
    if (parked.length) {
      for (const m of parked) {
        logger.error("replicator: dropping message after repeated permanent failures", {
          id: m.id,
          subject: m.subject,
          attempts: maxAttempts,
        });
      }
      s.parked += parked.length;
    }
    const toDelete = acked.concat(parked.map((m) => m.id));
    if (toDelete.length) spool.ack(toDelete);
    s.sent += acked.length;
    if (acked.length) s.lastSentAt = Date.now();
    if (firstError !== null) {
      s.failures++;
      s.lastError = String((firstError as Error)?.message ?? firstError);
      leanOk = false;
      return false;
    }
    leanOk = true;
    return true;
  }

  async function run() {
    while (running) {
      const js = options.js();
      let batch: SpoolMessage[] = [];
      if (js) {
        try {
          batch = spool.next(batchSize);
        } catch (e) {
          if (!running) break;
          s.lastError = String(e);
          logger.error("replicator: spool read failed", { error: String(e) });
        }
      }
      if (!js || batch.length === 0) {
        checkDrained();
        if (!running) break;
        await sleep(js ? null : Math.max(delayMs, minMs));
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
