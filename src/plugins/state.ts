/**
 * Agent-private key/value state (`mr_state_get` / `mr_state_put`) in SQLite
 * (`<stateDir>/agent-state.sqlite`, WAL), keyed by agent name so it survives restarts
 * and upgrades of the agent's module.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";

/** A per-agent quota on {@linkcode StateStore.put}. */
export interface StateQuota {
  maxKeys: number;
  /** Over keys and values (UTF-8 bytes of the key and of the value's JSON). */
  maxBytes: number;
}

/** A put refused because the agent's quota would be exceeded (`quota_exceeded`). */
export class StateQuotaError extends Error {
  override name = "StateQuotaError";
  readonly code = "quota_exceeded";
}

/** Per-agent JSON values. */
export interface StateStore {
  get(agent: string, key: string): unknown;
  /** `null` deletes. Throws {@linkcode StateQuotaError} when `quota` would be exceeded. */
  put(agent: string, key: string, value: unknown, quota?: StateQuota): void;
  /** Keys and bytes an agent uses. */
  usage(agent: string): { keys: number; bytes: number };
  close(): void;
}

/** Opens (creating) the state database in `stateDir`. */
export function openStateStore(stateDir: string): StateStore {
  Deno.mkdirSync(stateDir, { recursive: true });
  const db = new DatabaseSync(join(stateDir, "agent-state.sqlite"));
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec(
    "CREATE TABLE IF NOT EXISTS agent_state (agent TEXT NOT NULL, key TEXT NOT NULL, " +
      "value TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (agent, key))",
  );
  const sel = db.prepare("SELECT value FROM agent_state WHERE agent = ? AND key = ?");
  const ups = db.prepare(
    "INSERT INTO agent_state (agent, key, value, updated) VALUES (?, ?, ?, ?) " +
      "ON CONFLICT (agent, key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
  );
  const del = db.prepare("DELETE FROM agent_state WHERE agent = ? AND key = ?");
  const usage = db.prepare(
    "SELECT COUNT(*) AS n, COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0) AS b FROM agent_state WHERE agent = ?",
  );
  const sizeOf = db.prepare(
    "SELECT length(CAST(key AS BLOB)) + length(CAST(value AS BLOB)) AS b FROM agent_state WHERE agent = ? AND key = ?",
  );
  const enc = new TextEncoder();
  // per-agent usage, loaded once from SQL and kept current by put (a quota check must not
  // scan every row of the agent)
  const used = new Map<string, { keys: number; bytes: number }>();
  const usageOf = (agent: string) => {
    let u = used.get(agent);
    if (!u) {
      const r = usage.get(agent) as { n: number; b: number };
      u = { keys: Number(r.n), bytes: Number(r.b) };
      used.set(agent, u);
    }
    return u;
  };
  return {
    get(agent, key) {
      const row = sel.get(agent, key) as { value: string } | undefined;
      return row ? JSON.parse(row.value) : null;
    },
    put(agent, key, value, quota) {
      const u = usageOf(agent);
      const old = sizeOf.get(agent, key) as { b: number } | undefined;
      const oldBytes = Number(old?.b ?? 0);
      if (value === null || value === undefined) {
        del.run(agent, key);
        if (old) {
          u.keys -= 1;
          u.bytes -= oldBytes;
        }
        return;
      }
      const json = JSON.stringify(value);
      const keys = u.keys + (old ? 0 : 1);
      const bytes = u.bytes - oldBytes + enc.encode(key).length + enc.encode(json).length;
      if (quota && keys > quota.maxKeys) {
        throw new StateQuotaError(
          `State quota exceeded: ${quota.maxKeys} keys per agent (delete keys with a null value)`,
        );
      }
      if (quota && bytes > quota.maxBytes) {
        throw new StateQuotaError(
          `State quota exceeded: ${bytes} bytes, more than ${quota.maxBytes} per agent`,
        );
      }
      ups.run(agent, key, json, Date.now());
      u.keys = keys;
      u.bytes = bytes;
    },
    usage(agent) {
      const u = usageOf(agent);
      return { keys: u.keys, bytes: u.bytes };
    },
    close() {
      db.close();
    },
  };
}
