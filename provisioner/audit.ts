/**
 * The provisioning audit log: one JSON record per decision in `<home>/audit.log`, each
 * carrying the previous record's hash (`prev`) and its own (`hash`), so an edited, removed
 * or reordered record breaks the chain (`mr-saas audit verify`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

let auditTail: Promise<void> = Promise.resolve();
const lastHash = new Map<string, string>();

/** Appends a hash-chained audit record (`prev` = previous record's hash). */
export function audit(home: string, record: Record<string, unknown>): Promise<void> {
  const path = join(home, "audit.log");
  auditTail = auditTail.then(async () => {
    let prev = lastHash.get(path);
    if (prev === undefined) {
      prev = "0".repeat(64);
      try {
        const lines = (await Deno.readTextFile(path)).trim().split("\n").filter(Boolean);
        if (lines.length) prev = JSON.parse(lines.at(-1)!).hash;
      } catch { /* new log */ }
    }
    const body = { time: new Date().toISOString(), ...record, prev };
    const hash = createHash("sha256").update(JSON.stringify(body)).digest("hex");
    await Deno.writeTextFile(path, JSON.stringify({ ...body, hash }) + "\n", {
      append: true,
      mode: 0o600,
    });
    lastHash.set(path, hash);
  });
  return auditTail;
}

/** Verifies the chain; returns the 1-based line of the first bad record, or 0. */
export async function verifyAudit(
  home: string,
): Promise<{ records: number; badLine: number; reason?: string }> {
  const lines = (await Deno.readTextFile(join(home, "audit.log"))).split("\n").filter(Boolean);
  let prev = "0".repeat(64);
  for (let i = 0; i < lines.length; i++) {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(lines[i]!);
    } catch {
      return { records: lines.length, badLine: i + 1, reason: "not JSON" };
    }
    const { hash, ...body } = rec;
    if (body.prev !== prev) {
      return { records: lines.length, badLine: i + 1, reason: "chain broken (prev hash)" };
    }
    const actual = createHash("sha256").update(JSON.stringify(body)).digest("hex");
    if (actual !== hash) {
      return { records: lines.length, badLine: i + 1, reason: "record edited (hash mismatch)" };
    }
    prev = hash as string;
  }
  return { records: lines.length, badLine: 0 };
}
