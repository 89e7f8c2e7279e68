import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstream, type JetStreamClient, jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer, tempDir } from "./helpers/nats_server.ts";
import { openSpool } from "../src/spool/mod.ts";
import { createReplicator } from "../src/replicator/mod.ts";
import { createOutbox } from "../src/events/mod.ts";
import { silentLogger } from "../src/log/logger.ts";
import { createStreams, streamIds } from "../src/replicator/testdata/streams.ts";

Deno.test("replicator - server outage: spool accumulates, every message exactly once after restart", async () => {
  await using srv = await startNatsServer();
  await using dir = await tempDir();
  const nc = await connect({
    servers: srv.url,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
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
      backoff: { minMs: 50, maxMs: 500 },
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
    rep.start();
    const outbox = createOutbox({ spool, config: { customer: "acme", site: "s1", node: "n1" } });
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push(await outbox.event("lifecycle", "alive", { i }));
    assert(await rep.flush(10_000), "first batch drained");
    assertEquals(spool.stats().depth, 0);

    await srv.stop();
    for (let i = 50; i < 300; i++) {
      ids.push(await outbox.event("lifecycle", "alive", { i }));
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    // also messages published into a dying connection (not yet noticed as disconnected)
    assert(spool.stats().depth > 0, "spool accumulates while the server is down");
    await srv.restart();
    assert(await rep.flush(30_000), "drained after restart");
    const stored = await streamIds(nc, "MR_EVENTS");
    assertEquals(stored.length, ids.length);
    assertEquals(new Set(stored).size, ids.length, "no duplicates");
    assertEquals([...stored].sort(), [...ids].sort());
    // order within one priority is kept
    assertEquals(stored, ids);
    const st = rep.stats();
    assertEquals(st.sent, ids.length);
    assertEquals(st.inFlight, 0);
    await rep.stop();
    spool.close();
    await nc.close();
    await statusLoop;
  } finally {
    if (!nc.isClosed()) await nc.close();
  }
});

Deno.test("replicator - CloudEvent, submission and metric arrive with contract subjects and fields", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  try {
    await createStreams(nc);
    const js = jetstream(nc);
    const spool = openSpool(":memory:");
    const rep = createReplicator({ spool, js: () => js, nc: () => nc, logger: silentLogger });
    rep.start();
    const outbox = createOutbox({ spool, config: { customer: "acme", site: "s1", node: "n1" } });
    const evId = await outbox.event("agent", "started", { ok: true }, { agent: "web" });
    const subId = await outbox.submit("orders", { n: 1 }, { agent: "web" });
    await outbox.metric({ name: "cpu", value: 0.5, labels: { core: "0" } });
    assert(await rep.flush(10_000));
    const jsm = await jetstreamManager(nc);
    const ev = await jsm.streams.getMessage("MR_EVENTS", { last_by_subj: "mr.s1.n1.ev.agent" });
    assertEquals(ev!.header.get("Nats-Msg-Id"), evId);
    const doc = ev!.json<Record<string, unknown>>();
    assertEquals(doc.specversion, "1.0");
    assertEquals(doc.id, evId);
    assertEquals(doc.source, "mr://acme/s1/n1/agents/web");
    assertEquals(doc.type, "io.machineroom.agent.v1.started");
    assertEquals(doc.mrsite, "s1");
    assertEquals(doc.mrnode, "n1");
    assertEquals(doc.mragent, "web");
    assertEquals(doc.datacontenttype, "application/json");
    assertEquals(doc.data, { ok: true });
    const sub = await jsm.streams.getMessage("MR_SUBMISSION", {
      last_by_subj: "mr.s1.n1.submit.orders",
    });
    assertEquals(sub!.header.get("Nats-Msg-Id"), subId);
    assertEquals(sub!.header.get("Mr-Source"), "mr://acme/s1/n1/agents/web");
    assertEquals(sub!.json(), { n: 1 });
    const met = await jsm.streams.getMessage("MR_METRICS", { last_by_subj: "mr.s1.n1.metrics" });
    const m = met!.json<Record<string, unknown>>();
    assertEquals([m.name, m.value, m.kind, m.labels], ["cpu", 0.5, "gauge", { core: "0" }]);
    await rep.stop();
    spool.close();
  } finally {
    await nc.close();
  }
});

Deno.test("replicator - a message with no stream is parked after maxAttempts and does not block", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  try {
    await createStreams(nc);
    const js = jetstream(nc);
    const spool = openSpool(":memory:");
    const rep = createReplicator({
      spool,
      js: () => js,
      nc: () => nc,
      logger: silentLogger,
      maxAttempts: 3,
      ackTimeoutMs: 1000,
      backoff: { minMs: 10, maxMs: 20 },
      messageBackoff: { minMs: 10, maxMs: 20 },
      minParkAgeMs: 0,
    });
    const enc = new TextEncoder();
    spool.append({
      id: "01JAAAAAAAAAAAAAAAAAAAAAAA",
      subject: "nostream.here",
      payload: enc.encode("{}"),
      priority: 0,
      expiresAt: Date.now() + 60_000,
    });
    const outbox = createOutbox({ spool, config: { customer: "acme", site: "s1", node: "n1" } });
    const id = await outbox.event("lifecycle", "startup", {});
    rep.start();
    assert(
      await rep.flush(15_000),
      `queue drained past the bad message: ${JSON.stringify(rep.stats())}`,
    );
    const st = rep.stats();
    assertEquals(st.parked, 1);
    assert(st.failures >= 2, `failed rounds before parking: ${st.failures}`);
    assertEquals(await streamIds(nc, "MR_EVENTS"), [id]);
    // parked, not deleted
    const dl = spool.deadLetters();
    assertEquals(dl.map((d) => [d.id, d.reason, d.count]), [
      ["01JAAAAAAAAAAAAAAAAAAAAAAA", "no_stream", 3],
    ]);
    await rep.stop();
    spool.close();
  } finally {
    await nc.close();
  }
});

Deno.test("replicator - a message with no stream is held, not parked, before minParkAgeMs; the rest flows", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  try {
    await createStreams(nc);
    const js = jetstream(nc);
    const spool = openSpool(":memory:");
    const rep = createReplicator({
      spool,
      js: () => js,
      nc: () => nc,
      logger: silentLogger,
      maxAttempts: 2,
      messageBackoff: { minMs: 10, maxMs: 20 },
      minParkAgeMs: 60_000,
    });
    spool.append({
      id: "01JBBBBBBBBBBBBBBBBBBBBBBB",
      subject: "nostream.yet",
      payload: new TextEncoder().encode("{}"),
      priority: 2,
      expiresAt: Date.now() + 600_000,
    });
    const outbox = createOutbox({ spool, config: { customer: "acme", site: "s1", node: "n1" } });
    const id = await outbox.event("lifecycle", "startup", {});
    rep.start();
    const deadline = Date.now() + 15_000;
    while ((await streamIds(nc, "MR_EVENTS")).length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assertEquals(await streamIds(nc, "MR_EVENTS"), [id]);
    await new Promise((r) => setTimeout(r, 500)); // many more attempts than maxAttempts
    const st = rep.stats();
    assertEquals([st.parked, st.held, spool.stats().deadLetters], [0, 1, 0]);
    assertEquals(spool.depth(), 1, "still queued, not deleted");
    await rep.stop();
    spool.close();
  } finally {
    await nc.close();
  }
});
