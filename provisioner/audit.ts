/**
 * The provisioning audit log, `<home>/audit.log`: one JSON record per decision, each with
 * its sequence number (`seq`), the previous record's MAC (`prev`) and its own (`hash`), an
 * HMAC-SHA256 keyed with `keys/audit.key` (0600, never leaves the home). Without the key
 * an edited record cannot be given a valid MAC, so editing, removing, reordering records or
 * recomputing the chain is detected by `mr-saas audit verify`.
 *
 * Every process appends through one file lock (`audit.lock`) and re-reads the log's tail
 * under it, so `serve` and CLI commands interleave into one chain. A failed append fails
 * only itself; a failure to publish the head (below) does not fail the append.
 *
 * Truncation: a process holding the records (records.ts) publishes the head (`seq`,
 * `hash`) to `MR_PROV_AUDIT` under the same lock; `verify` compares the log with it, so a
 * tail cut off (or a log replaced by an older copy) is detected, up to the last append made
 * by a connected process.
 *
 * @module
 */
import { createHmac } from "node:crypto";
import { join } from "node:path";
import type { AuditHead, Records } from "./records.ts";

const GENESIS = "0".repeat(64);
const TAIL_BYTES = 4096;
const MAX_TAIL_BYTES = 1024 * 1024;

let auditTail: Promise<unknown> = Promise.resolve();
const keys = new Map<string, Uint8Array>();

/** The home's audit MAC key (created 0600 on first use; concurrent creators agree). */
export async function auditKey(home: string): Promise<Uint8Array> {
  const known = keys.get(home);
  if (known) return known;
  const path = join(home, "keys", "audit.key");
  try {
    const f = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    try {
      const key = crypto.getRandomValues(new Uint8Array(32));
      await f.write(
        new TextEncoder().encode(Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("")),
      );
    } finally {
      f.close();
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  for (let i = 0;; i++) {
    const hex = (await Deno.readTextFile(path)).trim();
    if (hex.length === 64) {
      const key = Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
      keys.set(home, key);
      return key;
    }
    if (i > 50) throw new Error(`${path} is not a 32-byte hex key`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function mac(key: Uint8Array, body: Record<string, unknown>): string {
  return createHmac("sha256", key).update(JSON.stringify(body)).digest("hex");
}

/** The last whole record of the log (seq and hash), or the genesis. */
async function readHead(path: string): Promise<AuditHead> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { seq: 0, hash: GENESIS };
    throw err;
  }
  try {
    const size = (await f.stat()).size;
    for (let want = TAIL_BYTES;; want *= 4) {
      const head = await tailHead(f, size, want);
      if (head) return head;
      if (want >= size) return { seq: 0, hash: GENESIS };
      if (want >= MAX_TAIL_BYTES) {
        throw new Error(`${path}: no whole record in its last ${MAX_TAIL_BYTES} bytes`);
      }
    }
  } finally {
    f.close();
  }
}

/** The last whole record within the last `want` bytes, or null. */
async function tailHead(f: Deno.FsFile, size: number, want: number): Promise<AuditHead | null> {
  {
    const start = Math.max(0, size - want);
    await f.seek(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(size - start);
    let off = 0;
    while (off < buf.length) {
      const n = await f.read(buf.subarray(off));
      if (n === null) break;
      off += n;
    }
    const lines = new TextDecoder().decode(buf.subarray(0, off)).split("\n");
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        const r = JSON.parse(lines[i]!);
        if (typeof r.seq === "number" && typeof r.hash === "string") {
          return { seq: r.seq, hash: r.hash };
        }
      } catch { /* a partial line from a crashed writer */ }
    }
    return null;
  }
}

async function endsWithoutNewline(path: string): Promise<boolean> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
  try {
    const size = (await f.stat()).size;
    if (size === 0) return false;
    await f.seek(size - 1, Deno.SeekMode.Start);
    const b = new Uint8Array(1);
    await f.read(b);
    return b[0] !== 0x0a;
  } finally {
    f.close();
  }
}

/** Options of {@linkcode audit}. */
export interface AuditOptions {
  /** Publish the new head to these records (truncation anchor). */
  anchor?: Records;
  /** Told when publishing the head failed (the record itself is written). */
  onAnchorError?: (err: unknown) => void;
  /** @default {Date.now} */
  now?: () => number;
}

/** Appends a MAC-chained audit record under the home's file lock. */
export function audit(
  home: string,
  record: Record<string, unknown>,
  options: AuditOptions = {},
): Promise<void> {
  const path = join(home, "audit.log");
  const run = async () => {
    const key = await auditKey(home);
    const lock = await Deno.open(join(home, "audit.lock"), {
      write: true,
      create: true,
      mode: 0o600,
    });
    try {
      await lock.lock(true);
      const head = await readHead(path);
      const body = {
        seq: head.seq + 1,
        time: new Date((options.now ?? Date.now)()).toISOString(),
        ...record,
        prev: head.hash,
      };
      const hash = mac(key, body);
      // a writer killed mid-line left a partial record: start on a new line (verify names it)
      const sep = (await endsWithoutNewline(path)) ? "\n" : "";
      await Deno.writeTextFile(path, sep + JSON.stringify({ ...body, hash }) + "\n", {
        append: true,
        mode: 0o600,
      });
      if (options.anchor) {
        // under the lock: heads are published in order, so a plain put keeps it monotonic.
        // The record is written: a NATS hiccup must not fail the decision it records, and
        // the next connected append anchors the head again.
        await options.anchor.put("audit", "head", { seq: body.seq, hash } satisfies AuditHead)
          .catch((err) => options.onAnchorError?.(err));
      }
    } finally {
      await lock.unlock().catch(() => {});
      lock.close();
    }
  };
  const p = auditTail.then(run, run);
  auditTail = p.catch(() => {});
  return p;
}

/** Result of {@linkcode verifyAudit}. */
export interface AuditVerification {
  records: number;
  /** 1-based line of the first bad record, or 0. */
  badLine: number;
  reason?: string;
  /** The log's last record. */
  head: AuditHead;
  /** The anchored head the log was compared with (null when no records were given). */
  anchor: AuditHead | null;
}

/** Verifies the chain (and, given the records, the anchored head). */
export async function verifyAudit(
  home: string,
  options: { records?: Records } = {},
): Promise<AuditVerification> {
  const key = await auditKey(home);
  const lines = (await Deno.readTextFile(join(home, "audit.log"))).split("\n").filter(Boolean);
  const anchor = options.records ? await options.records.get<AuditHead>("audit", "head") : null;
  let prev = GENESIS;
  const hashes: string[] = [];
  const bad = (i: number, reason: string): AuditVerification => ({
    records: lines.length,
    badLine: i + 1,
    reason,
    head: { seq: i, hash: prev },
    anchor,
  });
  for (let i = 0; i < lines.length; i++) {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(lines[i]!);
    } catch {
      return bad(i, "not JSON");
    }
    const { hash, ...body } = rec;
    if (body.seq !== i + 1) {
      return bad(
        i,
        `sequence ${body.seq} where ${i + 1} was expected (record removed or inserted)`,
      );
    }
    if (body.prev !== prev) return bad(i, "chain broken (prev does not match the record before)");
    if (mac(key, body) !== hash) return bad(i, "record edited (MAC mismatch)");
    prev = hash as string;
    hashes.push(prev);
  }
  const head = { seq: lines.length, hash: prev };
  if (anchor) {
    if (anchor.seq > lines.length) {
      return {
        records: lines.length,
        badLine: lines.length + 1,
        reason:
          `truncated: the anchored head is record ${anchor.seq}, the log ends at ${lines.length}`,
        head,
        anchor,
      };
    }
    if (hashes[anchor.seq - 1] !== anchor.hash) {
      return {
        records: lines.length,
        badLine: anchor.seq,
        reason: "record differs from the anchored head (log replaced)",
        head,
        anchor,
      };
    }
  }
  return { records: lines.length, badLine: 0, head, anchor };
}
