/**
 * Reads every message of a stream (optionally filtered by subject) with an ordered consumer,
 * for tests that count what arrived by `Nats-Msg-Id`.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";

/** One stored message. */
export interface StoredMessage {
  seq: number;
  subject: string;
  /** `Nats-Msg-Id` header ("" when absent). */
  id: string;
  json: Record<string, unknown>;
}

/** All messages of `stream` matching `filter` (default all), in stream order. */
export async function readStream(
  nc: NatsConnection,
  stream: string,
  filter = ">",
): Promise<StoredMessage[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  if (info.state.messages === 0) return [];
  const c = await jetstream(nc).consumers.get(stream, { filter_subjects: filter });
  const out: StoredMessage[] = [];
  for (;;) {
    const it = await c.fetch({ max_messages: 1000, expires: 2_000 });
    let got = 0;
    let done = false;
    for await (const m of it) {
      got++;
      let json: Record<string, unknown> = {};
      try {
        json = m.json();
      } catch { /* not JSON */ }
      out.push({ seq: m.seq, subject: m.subject, id: m.headers?.get("Nats-Msg-Id") ?? "", json });
      if (m.info.pending === 0) {
        done = true;
        break; // stops the fetch instead of waiting for it to expire
      }
    }
    if (done || got === 0) break;
  }
  return out;
}

/** Ids that occur more than once. */
export function duplicateIds(ms: StoredMessage[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const m of ms) {
    if (seen.has(m.id)) dup.add(m.id);
    seen.add(m.id);
  }
  return [...dup];
}

/**
 * The last message on `subject` in `stream` (one STREAM.MSG.GET, no consumer: cheap while a
 * cluster is electing leaders), or `null` when there is none.
 */
export async function lastMessage(
  nc: NatsConnection,
  stream: string,
  subject: string,
): Promise<StoredMessage | null> {
  const jsm = await jetstreamManager(nc);
  const m = await jsm.streams.getMessage(stream, { last_by_subj: subject });
  if (!m) return null;
  let json: Record<string, unknown> = {};
  try {
    json = m.json();
  } catch { /* not JSON */ }
  return { seq: m.seq, subject: m.subject, id: m.header.get("Nats-Msg-Id") ?? "", json };
}
