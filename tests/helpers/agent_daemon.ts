/**
 * Test helpers for agents under a running daemon: upload a module to s3rver by hash, read
 * every CloudEvent of `MR_EVENTS`, and measure a process's CPU ticks from /proc.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { AwsClient } from "aws4fetch";
import { createHash } from "node:crypto";
import { assert } from "@std/assert";
import type { S3Server } from "./s3.ts";

/** Uploads `bytes` as `sha256/<hex>.wasm`; returns the spec's `wasm` block. */
export async function upload(s3: S3Server, bytes: Uint8Array) {
  const aws = new AwsClient({
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    region: s3.region,
    service: "s3",
  });
  const hex = createHash("sha256").update(bytes).digest("hex");
  const r = await aws.fetch(`${s3.endpoint}/${s3.bucket}/sha256/${hex}.wasm`, {
    method: "PUT",
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  assert(r.ok, `upload failed: ${r.status}`);
  return { sha256: hex, size: bytes.length, url: `s3://${s3.bucket}/sha256/${hex}.wasm` };
}

/** A CloudEvent as the tests read it. */
export type Ev = { type: string; data: Record<string, unknown>; mragent?: string };
/** Every event in `MR_EVENTS`, in order. */
export async function events(nc: NatsConnection): Promise<Ev[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info("MR_EVENTS");
  const out: Ev[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages; seq++) {
    const m = await jsm.streams.getMessage("MR_EVENTS", { seq }).catch(() => null);
    if (m) out.push(m.json<Ev>());
  }
  return out;
}

/** utime + stime of `pid`, or `null` when it is gone. */
export function cpuTicks(pid: number): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

/** Ticks used by `pid` over one second (best of two windows). */
export async function busyTicks(pid: number): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < 2; i++) {
    const a = cpuTicks(pid);
    await new Promise((r) => setTimeout(r, 1000));
    const b = cpuTicks(pid);
    if (a === null || b === null) return 0;
    best = Math.min(best, b - a);
  }
  return best;
}
