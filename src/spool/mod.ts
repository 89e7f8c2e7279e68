/**
 * Durable spool: every message leaving the node is written here first (SQLite via
 * `node:sqlite`, WAL, `synchronous=NORMAL`), then drained by the replicator.
 *
 * Durability: with WAL + `synchronous=NORMAL` a committed transaction is in the WAL file
 * (the OS page cache) when `append()` returns, so it survives `kill -9` of the process;
 * it is not fsynced per commit, so a power loss may lose the last transactions (never
 * corrupt the database). Set `synchronous: "FULL"` to fsync each commit.
 *
 * Overflow policy: when `maxBytes` would be exceeded, the lowest-priority (highest
 * number), oldest rows are dropped first and counted in `dropped`. A message only ever
 * evicts rows of its own or a lower priority: when the rest of the spool is of higher
 * priority (e.g. lifecycle events, priority 1, and an agent's submission, priority ≥ 2)
 * the new message is refused instead ({@linkcode SpoolFullError}, also counted in
 * `dropped`), so agent data never evicts lifecycle events.
 *
 * Dead letters: a message the server refuses for good (too large, invalid subject, no
 * stream after several tries) is moved by the replicator to the `dead_letters` table
 * ({@linkcode Spool.park}) with its reason, failure count and first/last failure time. It
 * leaves the send queue (nothing behind it waits) but is not deleted: `machine-room spool
 * dead-letters --retry` moves it back, `--purge` deletes it. Dead letters have their own
 * cap ({@linkcode SpoolOptions.deadLetterMaxBytes}); beyond it the oldest are deleted and
 * counted in `deadLettersDropped`.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { Logger } from "../log/logger.ts";
import { openDeadLetters } from "./dead_letters.ts";

/** One spooled message. */
export interface SpoolMessage {
  /** ULID, also `Nats-Msg-Id`. */
  id: string;
  subject: string;
  payload: Uint8Array;
  headers?: Record<string, string>;
  /** 0 highest … 4 lowest. */
  priority: number;
  createdAt: number;
  expiresAt: number;
}

/** Spool counters. */
export interface SpoolStats {
  depth: number;
  bytes: number;
  oldestAgeMs: number | null;
  /** Messages evicted or refused because the spool was full. */
  dropped: number;
  expired: number;
  byPriority: Record<number, number>;
  /** Messages parked in the dead-letter table. */
  deadLetters: number;
  deadLetterBytes: number;
  /** Dead letters deleted because the dead-letter table was over its cap. */
  deadLettersDropped: number;
}

/** Why the replicator parked a message (see {@linkcode Spool.park}). */
export type DeadLetterReason =
  | "too_large"
  | "invalid_subject"
  | "no_stream"
  | "permission"
  | "rejected";

/** A parked message (payload not included). */
export interface DeadLetter {
  id: string;
  subject: string;
  priority: number;
  size: number;
  reason: DeadLetterReason;
  /** The last error, as text. */
  detail: string;
  /** Failed publishes before it was parked. */
  count: number;
  firstSeen: number;
  lastSeen: number;
  parkedAt: number;
  createdAt: number;
}

/** What {@linkcode Spool.park} records. */
export interface ParkInfo {
  reason: DeadLetterReason;
  detail: string;
  count: number;
  firstSeen: number;
  lastSeen: number;
}

/** A message refused because the rest of the spool is of higher priority. */
export class SpoolFullError extends RangeError {
  override name = "SpoolFullError";
  constructor(readonly id: string, readonly priority: number, options?: ErrorOptions) {
    super(
      `spool full: message ${id} (priority ${priority}) refused; the spool holds only higher-priority messages`,
      options,
    );
  }
}

/** Options for {@linkcode openSpool}. */
export interface SpoolOptions {
  /** Size cap over payload + subject + headers bytes. @default {256 MiB} */
  maxBytes?: number;
  logger?: Logger;
  now?: () => number;
  /** @default {"NORMAL"} */
  synchronous?: "NORMAL" | "FULL";
  /** Hold the database lock for the lifetime of the handle (faster commits). @default {true} */
  exclusive?: boolean;
  /** Cap of the dead-letter table (payload bytes). @default {maxBytes / 8} */
  deadLetterMaxBytes?: number;
}

/** Input of {@linkcode Spool.append}. */
export type SpoolInput = Omit<SpoolMessage, "createdAt"> & { createdAt?: number };

/** The durable spool. */
export interface Spool {
  /**
   * Durable when it returns. Throws RangeError for a message larger than the cap and
   * {@linkcode SpoolFullError} when only higher-priority messages could make room.
   */
  append(msg: SpoolInput): void;
  /** Appends in one transaction; returns the ids refused with {@linkcode SpoolFullError}. */
  appendMany(msgs: SpoolInput[]): { refused: string[] };
  /** Highest priority first, oldest first within a priority; purges expired rows. */
  next(limit: number, excludeIds?: ReadonlySet<string>): SpoolMessage[];
  /** Deletes acknowledged rows. */
  ack(ids: string[]): void;
  stats(): SpoolStats;
  /** Number of rows, O(1) (kept in memory). */
  depth(): number;
  /** Moves a queued message to the dead-letter table; false when it is not queued. */
  park(id: string, info: ParkInfo): boolean;
  /** Dead letters, oldest parked first. */
  deadLetters(limit?: number): DeadLetter[];
  /**
   * Moves dead letters (all when `ids` is omitted) back to the queue; an expired one gets
   * `retryTtlMs` more. Returns how many moved.
   */
  retryDeadLetters(ids?: string[], retryTtlMs?: number): number;
  /** Deletes dead letters (all when `ids` is omitted); returns how many. */
  purgeDeadLetters(ids?: string[]): number;
  /** Called after every append; returns an unsubscribe function. */
  onAppend(listener: () => void): () => void;
  /**
   * Sets the effective cap (at most the configured `maxBytes`; e.g. the daemon's share of
   * the free disk space). Lowering it evicts at the next append, by the overflow policy.
   * Returns the cap now in force.
   */
  limit(bytes: number): number;
  close(): void;
}

/** Default size cap: 256 MiB. */
export const DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024;

const enc = new TextEncoder();

interface Row {
  seq: number;
  id: string;
  subject: string;
  payload: Uint8Array;
  headers: string | null;
  priority: number;
  created_at: number;
  expires_at: number;
}

function sizeOf(m: SpoolInput): number {
  let n = m.payload.byteLength + enc.encode(m.subject).byteLength + 64;
  if (m.headers) n += enc.encode(JSON.stringify(m.headers)).byteLength;
  return n;
}

/** Opens (creating if needed) the spool database at `path` (`:memory:` for tests). */
export function openSpool(path: string, options: SpoolOptions = {}): Spool {
  const configuredMax = options.maxBytes ?? DEFAULT_SPOOL_MAX_BYTES;
  let maxBytes = configuredMax;
  const now = options.now ?? Date.now;
  const logger = options.logger;
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode=WAL");
  db.exec(`PRAGMA synchronous=${options.synchronous ?? "NORMAL"}`);
  db.exec("PRAGMA busy_timeout=5000");
  // One process owns the spool (the daemon; `submit` hands over through drop files), so
  // the WAL index needs no shared memory, and fewer checkpoints (each one fsyncs) keep
  // commits cheap; the WAL is bounded by the checkpoint interval (~16 MB).
  if (options.exclusive !== false && path !== ":memory:") db.exec("PRAGMA locking_mode=EXCLUSIVE");
  db.exec("PRAGMA wal_autocheckpoint=4000");
  db.exec(`
    CREATE TABLE IF NOT EXISTS messages (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      subject TEXT NOT NULL,
      payload BLOB NOT NULL,
      headers TEXT,
      priority INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      size INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS messages_order ON messages(priority, seq);
    CREATE INDEX IF NOT EXISTS messages_expiry ON messages(expires_at);
    CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT OR IGNORE INTO counters(name, value) VALUES ('dropped', 0), ('expired', 0);
  `);
  if (path !== ":memory:") {
    try {
      Deno.chmodSync(path, 0o600);
    } catch { /* best effort (non-posix) */ }
  }

  const insert = db.prepare(
    "INSERT OR IGNORE INTO messages(id, subject, payload, headers, priority, created_at, expires_at, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const selectNext = db.prepare(
    "SELECT seq, id, subject, payload, headers, priority, created_at, expires_at FROM messages ORDER BY priority ASC, seq ASC LIMIT ?",
  );
  const selectVictims = db.prepare(
    "SELECT seq, size FROM messages WHERE priority >= ? ORDER BY priority DESC, seq ASC LIMIT 256",
  );
  const deleteSeq = db.prepare("DELETE FROM messages WHERE seq = ?");
  // one statement per acknowledged batch (ids as a JSON array): no per-row JS↔SQLite call
  const deleteIds = db.prepare(
    "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?)) RETURNING size",
  );
  const countExpired = db.prepare(
    "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS b FROM messages WHERE expires_at <= ?",
  );
  const deleteExpired = db.prepare("DELETE FROM messages WHERE expires_at <= ?");
  const bump = db.prepare("UPDATE counters SET value = value + ? WHERE name = ?");
  const getCounter = db.prepare("SELECT value FROM counters WHERE name = ?");
  const totals = db.prepare(
    "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS b FROM messages",
  );
  const perPriority = db.prepare(
    "SELECT priority, COUNT(*) AS n FROM messages GROUP BY priority",
  );
  const oldest = db.prepare("SELECT created_at AS t FROM messages ORDER BY seq LIMIT 1");

  const t = totals.get() as { n: number; b: number };
  let depth = Number(t.n);
  let bytes = Number(t.b);
  let dropped = Number((getCounter.get("dropped") as { value: number }).value);
  let expired = Number((getCounter.get("expired") as { value: number }).value);
  const listeners = new Set<() => void>();
  let closed = false;

  function tx<T>(fn: () => T): T {
    db.exec("BEGIN IMMEDIATE");
    try {
      const r = fn();
      db.exec("COMMIT");
      return r;
    } catch (e) {
      // SQLite already rolled back after some errors (SQLITE_FULL): a ROLLBACK then would
      // throw "no transaction is active" and hide the real error
      if (db.isTransaction) db.exec("ROLLBACK");
      throw e;
    }
  }

  // evicts rows of `priority` or lower (numerically >=) only; stops when none is left
  function makeRoom(need: number, priority: number): { n: number; freed: number } {
    let n = 0;
    let freed = 0;
    while (bytes - freed + need > maxBytes) {
      const victims = selectVictims.all(priority) as { seq: number; size: number }[];
      if (victims.length === 0) break;
      for (const v of victims) {
        if (bytes - freed + need <= maxBytes) break;
        deleteSeq.run(v.seq);
        freed += Number(v.size);
        n++;
      }
    }
    if (n > 0) bump.run(n, "dropped");
    return { n, freed };
  }

  function insertOne(
    m: SpoolInput,
  ): { added: number; bytes: number; dropped: number; freed: number; refused: boolean } {
    if (!Number.isInteger(m.priority) || m.priority < 0 || m.priority > 4) {
      throw new RangeError(`spool: priority must be an integer 0..4, got ${m.priority}`);
    }
    const size = sizeOf(m);
    if (size > maxBytes) {
      throw new RangeError(
        `spool: message ${m.id} is ${size} bytes, larger than the spool cap of ${maxBytes} bytes`,
      );
    }
    let droppedNow = 0;
    let freed = 0;
    if (bytes + size > maxBytes) {
      const r = makeRoom(size, m.priority);
      droppedNow = r.n;
      freed = r.freed;
      bytes -= freed;
      depth -= droppedNow;
      if (bytes + size > maxBytes) {
        // only higher-priority rows are left: refuse this one rather than evict them
        bump.run(1, "dropped");
        return { added: 0, bytes: 0, dropped: droppedNow + 1, freed, refused: true };
      }
    }
    const res = insert.run(
      m.id,
      m.subject,
      m.payload,
      m.headers ? JSON.stringify(m.headers) : null,
      m.priority,
      m.createdAt ?? now(),
      m.expiresAt,
      size,
    );
    const added = Number(res.changes);
    if (added) {
      bytes += size;
      depth += 1;
    }
    return { added, bytes: size, dropped: droppedNow, freed, refused: false };
  }

  function notify() {
    for (const l of listeners) {
      try {
        l();
      } catch (e) {
        logger?.warn("spool listener failed", { error: String(e) });
      }
    }
  }

  function appendMany(msgs: SpoolInput[]): { refused: string[] } {
    if (closed) throw new Error("spool: closed");
    const refused: string[] = [];
    if (msgs.length === 0) return { refused };
    const savedDepth = depth, savedBytes = bytes;
    let d = 0;
    try {
      tx(() => {
        for (const m of msgs) {
          const r = insertOne(m);
          d += r.dropped;
          if (r.refused) refused.push(m.id);
        }
      });
    } catch (e) {
      depth = savedDepth;
      bytes = savedBytes;
      throw e;
    }
    if (d > 0) {
      dropped += d;
      logger?.warn("spool full: dropped lowest-priority oldest messages", {
        dropped: d,
        total_dropped: dropped,
        max_bytes: maxBytes,
        ...(refused.length ? { refused: refused.length } : {}),
      });
    }
    notify();
    return { refused };
  }

  function purgeExpired(): void {
    const ts = now();
    const r = countExpired.get(ts) as { n: number; b: number };
    const n = Number(r.n);
    if (n === 0) return;
    tx(() => {
      deleteExpired.run(ts);
      bump.run(n, "expired");
    });
    depth -= n;
    bytes -= Number(r.b);
    expired += n;
    logger?.info("spool: expired messages purged", { expired: n });
  }

  function toMessage(r: Row): SpoolMessage {
    const m: SpoolMessage = {
      id: r.id,
      subject: r.subject,
      payload: r.payload,
      priority: Number(r.priority),
      createdAt: Number(r.created_at),
      expiresAt: Number(r.expires_at),
    };
    if (r.headers !== null) m.headers = JSON.parse(r.headers);
    return m;
  }

  const dead = openDeadLetters(db, tx, now, options.deadLetterMaxBytes ?? maxBytes / 8);

  return {
    append(msg) {
      if (appendMany([msg]).refused.length) throw new SpoolFullError(msg.id, msg.priority);
    },
    appendMany,
    limit(n) {
      maxBytes = Math.min(configuredMax, Math.max(64 * 1024, Math.floor(n)));
      return maxBytes;
    },
    next(limit, excludeIds) {
      if (closed) throw new Error("spool: closed");
      purgeExpired();
      const extra = excludeIds?.size ?? 0;
      const rows = (selectNext as StatementSync).all(limit + extra) as unknown as Row[];
      const out: SpoolMessage[] = [];
      for (const r of rows) {
        if (excludeIds?.has(r.id)) continue;
        out.push(toMessage(r));
        if (out.length >= limit) break;
      }
      return out;
    },
    ack(ids) {
      if (closed || ids.length === 0) return;
      let n = 0, b = 0;
      for (const r of deleteIds.all(JSON.stringify(ids)) as { size: number }[]) {
        n++;
        b += Number(r.size);
      }
      depth -= n;
      bytes -= b;
    },
    stats() {
      const byPriority: Record<number, number> = { 0: 0, 1: 0, 2: 0, 3: 0, 4: 0 };
      let oldestAgeMs: number | null = null;
      if (!closed) {
        for (const r of perPriority.all() as { priority: number; n: number }[]) {
          byPriority[Number(r.priority)] = Number(r.n);
        }
        const o = oldest.get() as { t: number } | undefined;
        if (o) oldestAgeMs = Math.max(0, now() - Number(o.t));
      }
      return {
        depth,
        bytes,
        oldestAgeMs,
        dropped,
        expired,
        byPriority,
        deadLetters: dead.count(),
        deadLetterBytes: dead.bytes(),
        deadLettersDropped: dead.dropped(),
      };
    },
    park(id, info) {
      if (closed) return false;
      const size = dead.park(id, info);
      if (size === null) return false;
      depth -= 1;
      bytes -= size;
      return true;
    },
    deadLetters(limit = 1000) {
      return closed ? [] : dead.list(limit);
    },
    retryDeadLetters(ids, retryTtlMs = 3600_000) {
      if (closed) return 0;
      const r = dead.retry(ids, now() + retryTtlMs);
      depth += r.n;
      bytes += r.bytes;
      if (r.n) notify();
      return r.n;
    },
    purgeDeadLetters(ids) {
      return closed ? 0 : dead.purge(ids);
    },
    depth() {
      return depth;
    },
    onAppend(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      if (closed) return;
      closed = true;
      listeners.clear();
      db.close();
    },
  };
}
