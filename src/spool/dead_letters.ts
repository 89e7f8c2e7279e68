/**
 * The spool's dead-letter table: messages the server refused for good, moved out of the
 * send queue with their reason, failure count and first/last failure time. Moves are one
 * SQL transaction each (`INSERT … SELECT` + `DELETE`), so a message is always in exactly
 * one of the two tables.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { DeadLetter, DeadLetterReason, ParkInfo } from "./mod.ts";

/** Internal handle used by `openSpool`. */
export interface DeadLetterTable {
  /** Moves `id` from `messages`; returns its size, or null when it was not queued. */
  park(id: string, info: ParkInfo): number | null;
  list(limit: number): DeadLetter[];
  /** Moves back to `messages`; returns the count and bytes moved. */
  retry(ids: string[] | undefined, minExpiresAt: number): { n: number; bytes: number };
  purge(ids: string[] | undefined): number;
  count(): number;
  bytes(): number;
  dropped(): number;
}

interface DlRow {
  id: string;
  subject: string;
  priority: number;
  size: number;
  reason: string;
  detail: string;
  count: number;
  first_seen: number;
  last_seen: number;
  parked_at: number;
  created_at: number;
}

/** Creates the table (if needed) and its statements. */
export function openDeadLetters(
  db: DatabaseSync,
  tx: <T>(fn: () => T) => T,
  now: () => number,
  maxBytes: number,
): DeadLetterTable {
  db.exec(`
    CREATE TABLE IF NOT EXISTS dead_letters (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      subject TEXT NOT NULL,
      payload BLOB NOT NULL,
      headers TEXT,
      priority INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      size INTEGER NOT NULL,
      reason TEXT NOT NULL,
      detail TEXT NOT NULL,
      count INTEGER NOT NULL,
      first_seen INTEGER NOT NULL,
      last_seen INTEGER NOT NULL,
      parked_at INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO counters(name, value) VALUES ('dead_dropped', 0);
  `);
  const moveIn = db.prepare(
    `INSERT OR REPLACE INTO dead_letters(id, subject, payload, headers, priority, created_at,
       expires_at, size, reason, detail, count, first_seen, last_seen, parked_at)
     SELECT id, subject, payload, headers, priority, created_at, expires_at, size, ?, ?, ?, ?, ?, ?
     FROM messages WHERE id = ?`,
  );
  const sizeOf = db.prepare("SELECT size FROM messages WHERE id = ?");
  const delMsg = db.prepare("DELETE FROM messages WHERE id = ?");
  const list = db.prepare(
    `SELECT id, subject, priority, size, reason, detail, count, first_seen, last_seen, parked_at,
       created_at FROM dead_letters ORDER BY seq LIMIT ?`,
  );
  const totals = db.prepare("SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS b FROM dead_letters");
  const oldest = db.prepare("SELECT seq, size FROM dead_letters ORDER BY seq LIMIT 64");
  const delSeq = db.prepare("DELETE FROM dead_letters WHERE seq = ?");
  const bump = db.prepare("UPDATE counters SET value = value + ? WHERE name = 'dead_dropped'");
  const getDropped = db.prepare("SELECT value FROM counters WHERE name = 'dead_dropped'");
  const backAll = db.prepare(
    `INSERT OR IGNORE INTO messages(id, subject, payload, headers, priority, created_at, expires_at, size)
     SELECT id, subject, payload, headers, priority, created_at, MAX(expires_at, ?), size
     FROM dead_letters WHERE (? IS NULL OR id IN (SELECT value FROM json_each(?))) RETURNING size`,
  );
  const delSome = db.prepare(
    "DELETE FROM dead_letters WHERE (? IS NULL OR id IN (SELECT value FROM json_each(?)))",
  );

  const t = totals.get() as { n: number; b: number };
  let n = Number(t.n);
  let b = Number(t.b);
  let dropped = Number((getDropped.get() as { value: number }).value);

  const refresh = () => {
    const r = totals.get() as { n: number; b: number };
    n = Number(r.n);
    b = Number(r.b);
  };

  return {
    park(id, info) {
      const size = tx(() => {
        const row = sizeOf.get(id) as { size: number } | undefined;
        if (!row) return null;
        moveIn.run(
          info.reason,
          info.detail.slice(0, 1000),
          info.count,
          info.firstSeen,
          info.lastSeen,
          now(),
          id,
        );
        delMsg.run(id);
        const sz = Number(row.size);
        // over the cap: the oldest dead letters go (never the one just parked)
        let total = b + sz;
        let gone = 0;
        while (total > maxBytes) {
          const victims = oldest.all() as { seq: number; size: number }[];
          if (victims.length <= 1) break;
          for (const v of victims.slice(0, -1)) {
            if (total <= maxBytes) break;
            delSeq.run(v.seq);
            total -= Number(v.size);
            gone++;
          }
        }
        if (gone) bump.run(gone);
        dropped += gone;
        return sz;
      });
      refresh();
      return size;
    },
    list(limit) {
      return (list.all(limit) as unknown as DlRow[]).map((r) => ({
        id: r.id,
        subject: r.subject,
        priority: Number(r.priority),
        size: Number(r.size),
        reason: r.reason as DeadLetterReason,
        detail: r.detail,
        count: Number(r.count),
        firstSeen: Number(r.first_seen),
        lastSeen: Number(r.last_seen),
        parkedAt: Number(r.parked_at),
        createdAt: Number(r.created_at),
      }));
    },
    retry(ids, minExpiresAt) {
      const sel = ids ? JSON.stringify(ids) : null;
      const r = tx(() => {
        let moved = 0, bytes = 0;
        for (const row of backAll.all(minExpiresAt, sel, sel) as { size: number }[]) {
          moved++;
          bytes += Number(row.size);
        }
        delSome.run(sel, sel);
        return { n: moved, bytes };
      });
      refresh();
      return r;
    },
    purge(ids) {
      const sel = ids ? JSON.stringify(ids) : null;
      const before = n;
      delSome.run(sel, sel);
      refresh();
      return before - n;
    },
    count: () => n,
    bytes: () => b,
    dropped: () => dropped,
  };
}
