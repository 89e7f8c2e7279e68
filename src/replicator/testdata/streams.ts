// Test helpers: the SaaS streams of DESIGN §4 (duplicate window 2 min) and stored ids.
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";

const TWO_MIN_NS = 120_000 * 1_000_000;

export async function createStreams(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (
    const [name, subj] of [
      ["MR_EVENTS", "mr.*.*.ev.>"],
      ["MR_SUBMISSION", "mr.*.*.submit.>"],
      ["MR_METRICS", "mr.*.*.metrics"],
    ]
  ) {
    await jsm.streams.add({ name: name!, subjects: [subj!], duplicate_window: TWO_MIN_NS });
  }
}

/** All Nats-Msg-Id values stored in a stream, in stream order (`[]` for an empty stream). */
export async function streamIds(nc: NatsConnection, stream: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const ids: string[] = [];
  // an empty stream reports first_seq 0, and a get of seq 0 is a 400 "bad request"
  if (info.state.messages === 0) return ids;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (m) ids.push(m.header.get("Nats-Msg-Id"));
  }
  return ids;
}
