import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer } from "./helpers/nats_server.ts";

Deno.test("helpers - nats-server starts on a random port and does a JetStream round trip", async () => {
  await using srv = await startNatsServer();
  assert(srv.port > 0);
  const nc = await connect({ servers: srv.url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "T", subjects: ["t.>"] });
    const js = jetstream(nc);
    const ack = await js.publish("t.a", "hello", { msgID: "one" });
    const dup = await js.publish("t.a", "hello", { msgID: "one" });
    assertEquals(ack.seq, 1);
    assert(dup.duplicate);
    const m = await jsm.streams.getMessage("T", { seq: 1 });
    assertEquals(m?.string(), "hello");
  } finally {
    await nc.close();
  }
});

Deno.test("helpers - nats-server restarts on the same port keeping JetStream data", async () => {
  await using srv = await startNatsServer();
  const port = srv.port;
  let nc = await connect({ servers: srv.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "K", subjects: ["k"] });
  await jetstream(nc).publish("k", "1");
  await nc.close();
  await srv.restart();
  assertEquals(srv.port, port);
  nc = await connect({ servers: srv.url });
  const info = await (await jetstreamManager(nc)).streams.info("K");
  assertEquals(info.state.messages, 1);
  await nc.close();
});
