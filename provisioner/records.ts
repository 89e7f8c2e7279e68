/**
 * The provisioning records in NATS KV, in the vendor account (vendor.ts), shared by every
 * `mr-saas serve` and CLI process of a vendor and replicated by the NATS cluster:
 *
 * | bucket                | key                         | value                              |
 * | --------------------- | --------------------------- | ---------------------------------- |
 * | `MR_PROV_TOKENS`      | token id (`tokenKey(jti)`)  | {@linkcode TokenRecord}            |
 * | `MR_PROV_NODES`       | `<customer>.<site>.<node>`  | {@linkcode NodeRecord}             |
 * | `MR_PROV_REVOCATIONS` | `<customer>`                | user key (or `*`) → unix time      |
 * | `MR_PROV_NONCES`      | nonce id                    | used proof-of-possession nonces    |
 * | `MR_PROV_AUDIT`       | `head`                      | the audit log's anchored head      |
 *
 * Every change is a revision-checked compare-and-set ({@linkcode Records.update}), so
 * concurrent provisioners never lose an update nor over-count a token.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { vendorConnect } from "./vendor.ts";
import { importFileRecords } from "./migrate.ts";

export { nodeKey, tokenKey } from "./record_keys.ts";

/** A provisioning token's record. */
export interface TokenRecord {
  customer: string;
  site: string;
  /** Expiry, unix seconds. */
  exp: number;
  max_nodes: number;
  /** Every enrolment made with it (a name enrolled twice counts twice). */
  uses: number;
  revoked: boolean;
  /** The token id (the key is {@linkcode tokenKey} of it). */
  jti?: string;
}

/** A node name's record: every key it ever had. */
export interface NodeRecord {
  customer: string;
  site: string;
  node: string;
  /** The key that may renew now. */
  current: string;
  /** Every key the name was ever enrolled with, oldest first. */
  keys: { user: string; jti: string; time: string }[];
  /** Set by `node revoke`; a revoked name may enrol again under a new key. */
  revoked: boolean;
}

/** The anchored audit head (audit.ts). */
export interface AuditHead {
  seq: number;
  hash: string;
}

const BUCKETS = {
  tokens: "MR_PROV_TOKENS",
  nodes: "MR_PROV_NODES",
  revocations: "MR_PROV_REVOCATIONS",
  nonces: "MR_PROV_NONCES",
  audit: "MR_PROV_AUDIT",
} as const;

/** How long a used nonce is remembered (longer than any nonce lives). */
export const NONCE_MEMORY_MS = 10 * 60_000;

/** A compare-and-set that kept losing to other writers. */
export class RecordContentionError extends Error {
  override name = "RecordContentionError";
}

/** True for JetStream's "wrong last sequence" (another writer won the compare-and-set). */
export function isCasConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

/** The provisioning records of one vendor. Close with `close()` or `await using`. */
export interface Records extends AsyncDisposable {
  readonly nc: NatsConnection;
  get<T>(bucket: keyof typeof BUCKETS, key: string): Promise<T | null>;
  /**
   * Compare-and-set: `fn` gets the current value (or null) and returns the next; retried
   * against the latest revision while another writer wins. `fn` may throw to refuse.
   */
  update<T>(bucket: keyof typeof BUCKETS, key: string, fn: (cur: T | null) => T): Promise<T>;
  /** Overwrites `key` (only for values one writer owns at a time, e.g. under a lock). */
  put(bucket: keyof typeof BUCKETS, key: string, value: unknown): Promise<void>;
  /** Creates `key` only if absent; false when it exists. */
  create(bucket: keyof typeof BUCKETS, key: string, value: unknown): Promise<boolean>;
  /** Keys of a bucket matching a NATS subject filter. */
  keys(bucket: keyof typeof BUCKETS, filter?: string): Promise<string[]>;
  close(): Promise<void>;
}

/** Opens (creating when absent) the buckets on an existing vendor-account connection. */
export async function recordsOn(nc: NatsConnection, ownsConnection = false): Promise<Records> {
  const kvm = new Kvm(nc);
  const kvs = {} as Record<keyof typeof BUCKETS, KV>;
  for (const [k, name] of Object.entries(BUCKETS) as [keyof typeof BUCKETS, string][]) {
    kvs[k] = await kvm.create(name, {
      history: 1,
      ...(k === "nonces" ? { ttl: NONCE_MEMORY_MS } : {}),
    });
  }
  const latest = new Map<string, { value: string | null; revision: number }>();
  const remember = (k: string, v: { value: string; revision: number }) => {
    if (latest.size > 10_000) latest.clear();
    latest.set(k, v);
  };
  const close = async () => {
    if (ownsConnection) await nc.close().catch(() => {});
  };
  return {
    nc,
    async get<T>(bucket: keyof typeof BUCKETS, key: string) {
      const e = await kvs[bucket].get(key);
      return e && e.operation === "PUT" ? e.json<T>() : null;
    },
    async update<T>(bucket: keyof typeof BUCKETS, key: string, fn: (cur: T | null) => T) {
      const kv = kvs[bucket];
      const ck = `${bucket}/${key}`;
      for (let i = 0; i < 200; i++) {
        // the value this process wrote last is tried first (one round trip when no other
        // writer came between); a conflict falls back to reading the latest
        let seen = i === 0 ? latest.get(ck) : undefined;
        const fromCache = seen !== undefined;
        if (!seen) {
          const e = await kv.get(key);
          seen = e && e.operation === "PUT"
            ? { value: e.string(), revision: e.revision }
            : { value: null, revision: e?.revision ?? 0 };
        }
        let next: T;
        try {
          next = fn(seen.value === null ? null : JSON.parse(seen.value) as T);
        } catch (err) {
          // a refusal is only final when made on the latest value, not on a remembered one
          if (fromCache) {
            latest.delete(ck);
            continue;
          }
          throw err;
        }
        const text = JSON.stringify(next);
        try {
          const revision = seen.value !== null
            ? await kv.update(key, text, seen.revision)
            : await kv.create(key, text);
          remember(ck, { value: text, revision });
          return next;
        } catch (err) {
          latest.delete(ck);
          if (!isCasConflict(err)) throw err;
          if (i > 0) {
            await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 + i * 2)));
          }
        }
      }
      throw new RecordContentionError(`${BUCKETS[bucket]} ${key}: too many concurrent writers`);
    },
    async put(bucket, key, value) {
      await kvs[bucket].put(key, JSON.stringify(value));
    },
    async create(bucket, key, value) {
      try {
        await kvs[bucket].create(key, JSON.stringify(value));
        return true;
      } catch (err) {
        if (isCasConflict(err)) return false;
        throw err;
      }
    },
    async keys(bucket, filter) {
      const out: string[] = [];
      for await (const k of await kvs[bucket].keys(filter ?? ">")) out.push(k);
      return out.sort();
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Connects to the vendor account of `home` and opens the records. */
export async function openRecords(home: string, server?: string): Promise<Records> {
  const nc = await vendorConnect(home, server);
  try {
    const r = await recordsOn(nc, true);
    // a home from before the records moved to NATS: its files are imported once
    await importFileRecords(home, r);
    return r;
  } catch (err) {
    await nc.close().catch(() => {});
    throw err;
  }
}

/** Where the records are: an open {@linkcode Records} or the NATS server to open them on. */
export interface RecordsOption {
  /** NATS URL of the vendor's server. @default {the home's server} */
  server?: string;
  /** Records already open (not closed here). */
  records?: Records;
}

/** Runs `fn` with the records (opened and closed here unless given). */
export async function withRecords<T>(
  home: string,
  o: RecordsOption,
  fn: (r: Records) => Promise<T>,
): Promise<T> {
  if (o.records) return await fn(o.records);
  await using r = await openRecords(home, o.server);
  return await fn(r);
}
