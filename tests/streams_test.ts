import { assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer } from "./helpers/nats_server.ts";
import { DUPLICATE_WINDOW_MS, ensureStreams } from "../provisioner/mod.ts";

Deno.test("ensureStreams - creates DESIGN §4 streams and buckets idempotently", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  try {
    const first = await ensureStreams(nc);
    assertEquals(first.MR_EVENTS, "created");
    assertEquals(first.MR_DESIRED, "created");
    const second = await ensureStreams(nc);
    assertEquals(second.MR_EVENTS, "unchanged");
    assertEquals(second.MR_NODES, "unchanged");
    assertEquals(second.MR_ELECTION, "unchanged");
    const jsm = await jetstreamManager(nc);
    const ev = await jsm.streams.info("MR_EVENTS");
    assertEquals(ev.config.subjects, ["mr.*.*.ev.>"]);
    assertEquals(ev.config.duplicate_window, DUPLICATE_WINDOW_MS * 1_000_000);
    const nodes = await jsm.streams.info("MR_NODES");
    assertEquals(nodes.config.max_msgs_per_subject, 1);
    const third = await ensureStreams(nc, { metricsMaxAgeMs: 3600_000 });
    assertEquals(third.MR_METRICS, "updated");
  } finally {
    await nc.close();
  }
});
