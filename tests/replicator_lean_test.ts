// The replicator's lean JetStream publisher (src/replicator/publisher.ts) against a real
// nats-server: PubAcks, duplicates, no stream, a JetStream API refusal, a timeout.
import {
  isNoResponders,
  isPayloadTooLarge,
  isTimeout,
  jsApiCode,
  JsCode,
} from "../src/nats/errors.ts";
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer } from "./helpers/nats_server.ts";
import { createStreams } from "../src/replicator/testdata/streams.ts";
import { createLeanPublisher } from "../src/replicator/publisher.ts";
import type { SpoolMessage } from "../src/spool/mod.ts";

const enc = new TextEncoder();
const msg = (id: string, subject: string, body = "{}", headers?: Record<string, string>) => {
  const m: SpoolMessage = {
    id,
    subject,
    payload: enc.encode(body),
    priority: 2,
    createdAt: 0,
    expiresAt: 0,
  };
  if (headers) m.headers = headers;
  return m;
};

Deno.test("lean publisher - PubAcks, duplicates, no stream, API error and timeout", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url, inboxPrefix: "_INBOX.s1.n1" });
  try {
    await createStreams(nc);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "SMALL", subjects: ["small.>"], max_msg_size: 100 });
    const pub = createLeanPublisher(nc, "_INBOX.s1.n1");

    const r1 = await pub.publishBatch([
      msg("a", "mr.s1.n1.ev.x"),
      msg("b", "mr.s1.n1.ev.x"),
      msg("c", "mr.s1.n1.submit.y", "{}", { "Mr-Source": "mr://acme/s1/n1" }),
    ], 5000);
    assertEquals(r1.map((r) => r.status), ["fulfilled", "fulfilled", "fulfilled"]);
    const acks = r1.map((r) =>
      (r as PromiseFulfilledResult<{ stream: string; seq: number }>).value
    );
    assertEquals(acks.map((a) => a.stream), ["MR_EVENTS", "MR_EVENTS", "MR_SUBMISSION"]);
    assertEquals(acks[1]!.seq, acks[0]!.seq + 1);
    // the header reached the stream
    const stored = await jsm.streams.getMessage("MR_SUBMISSION", { seq: acks[2]!.seq });
    assertEquals(stored!.header.get("Mr-Source"), "mr://acme/s1/n1");
    assertEquals(stored!.header.get("Nats-Msg-Id"), "c");

    // a re-send is a duplicate; nothing new is stored
    const r2 = await pub.publishBatch([msg("a", "mr.s1.n1.ev.x")], 5000);
    assert(r2[0]!.status === "fulfilled" && r2[0]!.value.duplicate);
    assertEquals((await jsm.streams.info("MR_EVENTS")).state.messages, 2);

    // no stream on the subject, a refused message, one nobody answers
    const sink = nc.subscribe("void.>"); // takes the message, never replies
    const t0 = Date.now();
    const r3 = await pub.publishBatch([
      msg("d", "nostream.x"),
      msg("e", "small.x", JSON.stringify({ pad: "x".repeat(200) })),
      msg("f", "void.x"),
      msg("g", "mr.s1.n1.ev.x"),
    ], 400);
    assert(Date.now() - t0 >= 350, "the unanswered message waited for the batch timeout");
    const reason = (i: number) => (r3[i] as PromiseRejectedResult).reason as Error;
    assertEquals(r3.map((r) => r.status), ["rejected", "rejected", "rejected", "fulfilled"]);
    assert(isNoResponders(reason(0)), String(reason(0)));
    assertEquals(jsApiCode(reason(1)), JsCode.MessageExceedsMaximum, String(reason(1)));
    assert(isPayloadTooLarge(reason(1)));
    assert(isTimeout(reason(2)), String(reason(2)));
    sink.unsubscribe();

    // close() settles what is still waiting
    const sink2 = nc.subscribe("void.>");
    const pending = pub.publishBatch([msg("h", "void.y")], 60_000);
    pub.close();
    const r4 = await pending;
    assertEquals(r4[0]!.status, "rejected");
    sink2.unsubscribe();
  } finally {
    await nc.close();
  }
});
