/**
 * Imports the file records of a home made before the records moved to NATS
 * (`tokens.json`, `token-uses.log`, `accounts/<customer>/revocations.json`) into the KV
 * records, once: the files are renamed `*.imported` afterwards. Idempotent and safe to race
 * (creates only where absent, merges keys and revocations).
 *
 * @module
 */
import { join } from "node:path";
import type { NodeRecord, Records, TokenRecord } from "./records.ts";
import { nodeKey, tokenKey } from "./record_keys.ts";

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw new Error(`${path}: cannot import: ${(err as Error).message}`, { cause: err });
  }
}

async function retire(path: string): Promise<void> {
  await Deno.rename(path, `${path}.imported`).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}

/** Imports old file records of `home` into `r` (no-op when there are none). */
export async function importFileRecords(home: string, r: Records): Promise<void> {
  const tokensPath = join(home, "tokens.json");
  const usesPath = join(home, "token-uses.log");
  const tokens = await readJson<Record<string, TokenRecord & { nodes?: unknown }>>(tokensPath);
  if (tokens) {
    const uses = new Map<string, number>();
    const nodes = new Map<string, NodeRecord>();
    let log = "";
    try {
      log = await Deno.readTextFile(usesPath);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    for (const line of log.split("\n")) {
      if (!line.trim()) continue;
      const u = JSON.parse(line) as { jti: string; node: string; user: string; time?: string };
      const t = tokens[u.jti];
      if (!t) continue;
      uses.set(u.jti, (uses.get(u.jti) ?? 0) + 1);
      const k = nodeKey(t.customer, t.site, u.node);
      const n = nodes.get(k) ?? {
        customer: t.customer,
        site: t.site,
        node: u.node,
        current: u.user,
        keys: [],
        revoked: false,
      };
      n.keys.push({ user: u.user, jti: u.jti, time: u.time ?? new Date(0).toISOString() });
      n.current = u.user;
      nodes.set(k, n);
    }
    for (const [jti, t] of Object.entries(tokens)) {
      const { nodes: _old, ...rest } = t;
      await r.create("tokens", tokenKey(jti), {
        ...rest,
        jti,
        uses: Math.max(t.uses ?? 0, uses.get(jti) ?? 0),
      });
    }
    for (const [k, n] of nodes) {
      await r.update<NodeRecord>("nodes", k, (cur) => {
        if (!cur) return n;
        const have = new Set(cur.keys.map((x) => x.user));
        return { ...cur, keys: [...n.keys.filter((x) => !have.has(x.user)), ...cur.keys] };
      });
    }
  }
  const accounts = join(home, "accounts");
  try {
    for await (const e of Deno.readDir(accounts)) {
      if (!e.isDirectory) continue;
      const path = join(accounts, e.name, "revocations.json");
      const revs = await readJson<Record<string, number>>(path);
      if (!revs) continue;
      if (Object.keys(revs).length) {
        await r.update<Record<string, number>>("revocations", e.name, (cur) => ({
          ...revs,
          ...cur,
        }));
        // a revoked key's name is revoked
        for (const key of await r.keys("nodes", `${e.name}.>`)) {
          const n = await r.get<NodeRecord>("nodes", key);
          if (n && !n.revoked && revs[n.current]) {
            await r.update<NodeRecord>("nodes", key, (c) => ({ ...c!, revoked: true }));
          }
        }
      }
      await retire(path);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (tokens) {
    await retire(usesPath);
    await retire(tokensPath);
  }
}
