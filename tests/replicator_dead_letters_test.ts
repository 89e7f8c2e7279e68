// Dead letters against a real nats-server (max_payload 16 KiB): an oversized message and a
// message with no stream are parked in the spool's dead-letter table, the messages behind
// them are delivered, and a server restart mid-stream drops, duplicates and parks nothing.
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { startNatsServer, tempDir } from "./helpers/nats_server.ts";
import { openSpool } from "../src/spool/mod.ts";
import { createReplicator } from "../src/replicator/mod.ts";
import { createOutbox } from "../src/events/mod.ts";
import { silentLogger } from "../src/log/logger.ts";
import { createStreams, streamIds } from "../src/replicator/testdata/streams.ts";

Deno.test("replicator - oversized and no-stream messages are parked; the rest flows; a restart loses nothing", async () => {
  await using srv = await startNatsServer({ config: "max_payload: 16384" });
  await using dir = await tempDir();
  const nc = await connect({ servers: srv.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  try {
    await createStreams(nc);
    const js = jetstream(nc);
    let connected = true;
    const spool = openSpool(`${dir.path}/spool.db`);
    const rep = createReplicator({
      spool,
      js: (): JetStreamClient | null => connected ? js : null,
      nc: () => connected ? nc : null,
      logger: silentLogger,
      ackTimeoutMs: 1000,
      maxAttempts: 3,
      backoff: { minMs: 50, maxMs: 500 },
      messageBackoff: { minMs: 50, maxMs: 200 },
      minParkAgeMs: 0,
    });
    const statusLoop = (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect") connected = false;
        if (s.type === "reconnect") {
          connected = true;
          rep.kick();
        }
      }
    })();
    const outbox = createOutbox({ spool, config: { customer: "acme", site: "s1", node: "n1" } });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await outbox.event("lifecycle", "alive", { i }));
    // 40 KB: over the server's max_payload, well under the spool's cap
    const big = await outbox.submit("orders", { pad: "x".repeat(40_000) });
    spool.append({
      id: "01JNOSTREAMAAAAAAAAAAAAAAA",
      subject: "nostream.here",
      payload: new TextEncoder().encode("{}"),
      priority: 2,
      expiresAt: Date.now() + 600_000,
    });
    for (let i = 5; i < 10; i++) ids.push(await outbox.event("lifecycle", "alive", { i }));
    const sub = await outbox.submit("orders", { small: true });
    rep.start();
    assert(await rep.flush(20_000), `drained: ${JSON.stringify(rep.stats())}`);
    assertEquals(await streamIds(nc, "MR_EVENTS"), ids, "everything behind the bad ones arrived");
    assertEquals(await streamIds(nc, "MR_SUBMISSION"), [sub]);
    const dl = spool.deadLetters();
    assertEquals(dl.map((d) => [d.id, d.reason]).sort(), [
      ["01JNOSTREAMAAAAAAAAAAAAAAA", "no_stream"],
      [big, "too_large"],
    ]);
    const noStream = dl.find((d) => d.reason === "no_stream")!;
    assertEquals(noStream.count, 3);
    assert(noStream.lastSeen >= noStream.firstSeen);
    assertEquals(dl.find((d) => d.reason === "too_large")!.count, 1);
    assertEquals(rep.stats().parked, 2);
    assertEquals(spool.stats().deadLetters, 2);

    // the server restarts mid-stream: transient errors are never counted or parked
    const more: string[] = [];
    const producing = (async () => {
      for (let i = 0; i < 300; i++) {
        more.push(await outbox.event("lifecycle", "alive", { i: 100 + i }));
        if (i % 20 === 0) await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await new Promise((r) => setTimeout(r, 30));
    await srv.stop();
    await new Promise((r) => setTimeout(r, 300));
    await srv.restart();
    await producing;
    assert(await rep.flush(30_000), `drained after restart: ${JSON.stringify(rep.stats())}`);
    const stored = await streamIds(nc, "MR_EVENTS");
    const all = [...ids, ...more];
    assertEquals(stored.length, all.length, "nothing dropped");
    assertEquals(new Set(stored).size, stored.length, "nothing duplicated");
    assertEquals([...stored].sort(), [...all].sort());
    assertEquals(spool.stats().deadLetters, 2, "nothing transient was parked");
    assertEquals(rep.stats().parked, 2);
    assertEquals(rep.stats().held, 0);
    // a dead letter retried goes back to the queue (and is parked again: still no stream)
    assertEquals(spool.retryDeadLetters(["01JNOSTREAMAAAAAAAAAAAAAAA"]), 1);
    assert(await rep.flush(20_000));
    assertEquals(spool.stats().deadLetters, 2);
    await rep.stop();
    spool.close();
    await nc.close();
    await statusLoop;
  } finally {
    if (!nc.isClosed()) await nc.close();
  }
});
