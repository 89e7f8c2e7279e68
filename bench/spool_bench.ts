// Spool / replicator benchmarks (issue 3). Numbers are recorded in docs/spool.md.
// Each NATS bench starts its own nats-server; setup is excluded with b.start()/b.end().
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { openSpool, type SpoolInput } from "../src/spool/mod.ts";
import { createReplicator } from "../src/replicator/mod.ts";
import { createOutbox } from "../src/events/mod.ts";
import { silentLogger } from "../src/log/logger.ts";
import { createStreams } from "../src/replicator/testdata/streams.ts";
import { createUlidFactory, ulid } from "../src/util/ulid.ts";

const enc = new TextEncoder();
const dir = Deno.makeTempDirSync({ prefix: "mr-spool-bench-" });
const mkId = createUlidFactory();
const PAYLOAD = enc.encode(JSON.stringify({ i: 0, pad: "x".repeat(300) }));
const msg = (): SpoolInput => ({
  id: mkId(),
  subject: "mr.s1.n1.ev.bench",
  payload: PAYLOAD,
  priority: 2,
  expiresAt: Date.now() + 3600_000,
});

const single = openSpool(`${dir}/single.db`);
Deno.bench("spool append, 1 message per transaction (WAL, synchronous=NORMAL)", {
  group: "append",
  baseline: true,
}, () => {
  single.append(msg());
});

const batched = openSpool(`${dir}/batched.db`);
Deno.bench("spool appendMany, 100 messages per transaction", { group: "append" }, () => {
  batched.appendMany(Array.from({ length: 100 }, msg));
});

const E2E = 10_000;
const SIZE_DATA = { i: 0, pad: "x".repeat(200) };

Deno.bench(`raw JetStream publish loop, ${E2E} msgs pipelined 256 in flight`, {
  group: "e2e",
  baseline: true,
  n: 3,
  warmup: 1,
}, async (b) => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  await createStreams(nc);
  const js = jetstream(nc);
  // same size as the CloudEvent the outbox writes
  const spool = openSpool(":memory:");
  const outbox = createOutbox({ spool, config: { customer: "acme", site: "s1", node: "n1" } });
  await outbox.event("bench", "tick", SIZE_DATA);
  const body = spool.next(1)[0]!.payload;
  spool.close();
  b.start();
  for (let i = 0; i < E2E; i += 256) {
    const window = [];
    for (let j = i; j < Math.min(E2E, i + 256); j++) {
      window.push(js.publish("mr.s1.n1.ev.bench", body, { msgID: ulid() }));
    }
    await Promise.all(window);
  }
  b.end();
  await nc.close();
});

Deno.bench(`outbox.event → spool → replicator → JetStream ack, ${E2E} events, one at a time`, {
  group: "e2e",
  n: 3,
  warmup: 1,
}, async (b) => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  await createStreams(nc);
  const js = jetstream(nc);
  const spool = openSpool(`${dir}/e2e-${ulid()}.db`);
  const rep = createReplicator({ spool, js: () => js, nc: () => nc, logger: silentLogger });
  const outbox = createOutbox({ spool, config: { customer: "acme", site: "s1", node: "n1" } });
  rep.start();
  b.start();
  for (let i = 0; i < E2E; i++) await outbox.event("bench", "tick", SIZE_DATA);
  const ok = await rep.flush(120_000);
  b.end();
  if (!ok) throw new Error("e2e bench did not drain");
  await rep.stop();
  spool.close();
  await nc.close();
});

Deno.bench(
  `outbox.event → spool → replicator → JetStream ack, ${E2E} events, 256 in flight (as the raw loop)`,
  { group: "e2e", n: 3, warmup: 1 },
  async (b) => {
    await using srv = await startNatsServer();
    const nc = await connect({ servers: srv.url });
    await createStreams(nc);
    const js = jetstream(nc);
    const spool = openSpool(`${dir}/e2e-${ulid()}.db`);
    const rep = createReplicator({ spool, js: () => js, nc: () => nc, logger: silentLogger });
    const outbox = createOutbox({ spool, config: { customer: "acme", site: "s1", node: "n1" } });
    rep.start();
    b.start();
    for (let i = 0; i < E2E; i += 256) {
      const window = [];
      for (let j = i; j < Math.min(E2E, i + 256); j++) {
        window.push(outbox.event("bench", "tick", SIZE_DATA));
      }
      await Promise.all(window);
    }
    const ok = await rep.flush(120_000);
    b.end();
    if (!ok) throw new Error("e2e bench did not drain");
    await rep.stop();
    spool.close();
    await nc.close();
  },
);

const BACKLOG = 100_000;
Deno.bench(`drain a ${BACKLOG}-event backlog after an outage`, {
  group: "drain",
  n: 1,
  warmup: 0,
}, async (b) => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  await createStreams(nc);
  const js = jetstream(nc);
  const spool = openSpool(`${dir}/drain.db`);
  for (let i = 0; i < BACKLOG; i += 1000) spool.appendMany(Array.from({ length: 1000 }, msg));
  const rep = createReplicator({ spool, js: () => js, nc: () => nc, logger: silentLogger });
  b.start();
  rep.start();
  const ok = await rep.flush(300_000);
  b.end();
  if (!ok) throw new Error("drain bench did not finish");
  await rep.stop();
  spool.close();
  await nc.close();
});

globalThis.addEventListener("unload", () => {
  single.close();
  batched.close();
  Deno.removeSync(dir, { recursive: true });
});
