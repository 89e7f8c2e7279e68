import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer, tempDir } from "./helpers/nats_server.ts";
import { openSpool } from "../src/spool/mod.ts";
import { createReplicator } from "../src/replicator/mod.ts";
import { createOutbox } from "../src/events/mod.ts";
import { silentLogger } from "../src/log/logger.ts";
import { createStreams, streamIds } from "../src/replicator/testdata/streams.ts";

const CHILD = new URL("../src/replicator/testdata/drain_child.ts", import.meta.url).pathname;
const N = 4000;

Deno.test("replicator - kill -9 mid-drain and restart yields every message once in the stream", async () => {
  await using srv = await startNatsServer();
  await using dir = await tempDir();
  const path = `${dir.path}/spool.db`;
  const nc = await connect({ servers: srv.url });
  try {
    await createStreams(nc);
    const ids: string[] = [];
    {
      const spool = openSpool(path);
      const outbox = createOutbox({ spool, config: { customer: "acme", site: "s1", node: "n1" } });
      for (let i = 0; i < N; i++) ids.push(await outbox.event("test", "burst", { i }));
      spool.close();
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", CHILD, path, srv.url],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const jsm = await jetstreamManager(nc);
    let stored = 0;
    const deadline = Date.now() + 30_000;
    while (stored < N / 4 && Date.now() < deadline) {
      stored = (await jsm.streams.info("MR_EVENTS")).state.messages;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill("SIGKILL");
    await child.status;
    const atKill = (await jsm.streams.info("MR_EVENTS")).state.messages;
    assert(atKill > 0 && atKill < N, `killed mid-drain (stream had ${atKill} of ${N})`);

    const spool = openSpool(path);
    const left = spool.stats().depth;
    assert(left > 0, "spool still holds the rest");
    const js = jetstream(nc);
    const rep = createReplicator({ spool, js: () => js, nc: () => nc, logger: silentLogger });
    rep.start();
    assert(await rep.flush(30_000), "drained after restart");
    const got = await streamIds(nc, "MR_EVENTS");
    assertEquals(got.length, N, "no duplicates, no loss");
    assertEquals(new Set(got).size, N);
    assertEquals([...got].sort(), [...ids].sort());
    await rep.stop();
    spool.close();
  } finally {
    await nc.close();
  }
});
