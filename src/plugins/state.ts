/**
 * Agent-private key/value state (`mr_state_get` / `mr_state_put`) in SQLite
 * (`<stateDir>/agent-state.sqlite`, WAL), keyed by agent name so it survives restarts
 * and upgrades of the agent's module.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";

/** Per-agent JSON values. */
export interface StateStore {
  get(agent: string, key: string): unknown;
  /** `null` deletes. */
  put(agent: string, key: string, value: unknown): void;
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
  return {
    get(agent, key) {
      const row = sel.get(agent, key) as { value: string } | undefined;
      return row ? JSON.parse(row.value) : null;
    },
    put(agent, key, value) {
      if (value === null || value === undefined) del.run(agent, key);
      else ups.run(agent, key, JSON.stringify(value), Date.now());
    },
    close() {
      db.close();
    },
  };
}
