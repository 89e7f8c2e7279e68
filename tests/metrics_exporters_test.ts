// The daemon scrapes configured Prometheus exporters (real HTTP servers) and publishes
// filtered samples to MR_METRICS; a broken exporter is reported in health, not fatal.
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { ensureStreams } from "../provisioner/mod.ts";

Deno.test("metrics - exporters scraped on an interval, filtered, forwarded; a bad exporter degrades health only", async () => {
  let hits = 0;
  const good = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => {
    hits++;
    return new Response(
      `# TYPE app_requests_total counter\napp_requests_total{code="200"} ${100 + hits}\n` +
        `# TYPE app_queue_depth gauge\napp_queue_depth 7\nignored_metric 1\ngarbage line here\n`,
    );
  });
  const broken = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () => new Response("boom", { status: 500 }),
  );
  try {
    await using srv = await startNatsServer();
    const nc = await connect({ servers: srv.url });
    await ensureStreams(nc);
    const goodUrl = `http://127.0.0.1:${good.addr.port}/metrics`;
    const badUrl = `http://127.0.0.1:${broken.addr.port}/metrics`;
    await using node = await startNode({
      natsUrl: srv.url,
      node: "metrics",
      config: {
        metrics: {
          exporters: [
            { url: goodUrl, interval: "300ms", include: ["^app_"] },
            { url: badUrl, interval: "300ms" },
            { url: "http://127.0.0.1:1/metrics", interval: "300ms" },
          ],
        },
      },
    });
    const jsm = await jetstreamManager(nc);
    await waitFor(
      async () => (await jsm.streams.info("MR_METRICS")).state.messages >= 6,
      20_000,
      "metrics",
    );
    const names = new Set<string>();
    let counterKind = "";
    for (let seq = 1; seq <= 6; seq++) {
      const m = await jsm.streams.getMessage("MR_METRICS", { seq });
      assertEquals(m!.subject, "mr.site1.metrics.metrics");
      const doc = m!.json<Record<string, unknown>>();
      names.add(doc.name as string);
      assertEquals((doc.labels as Record<string, string>).exporter, goodUrl);
      if (doc.name === "app_requests_total") counterKind = doc.kind as string;
    }
    assertEquals([...names].sort(), ["app_queue_depth", "app_requests_total"]);
    assertEquals(counterKind, "counter");
    assert(hits >= 2, "scraped repeatedly");

    const h = await waitFor(
      async () => {
        const d = await node.health();
        const m = (d?.modules as Record<string, { exporters: { url: string; status: string }[] }>)
          ?.metrics;
        return m && m.exporters.every((e) => e.status !== "pending") ? { d, m } : null;
      },
      10_000,
      "exporter health",
    );
    const byUrl = Object.fromEntries(h.m.exporters.map((e) => [e.url, e]));
    assertEquals(byUrl[goodUrl]!.status, "ok");
    assertEquals(byUrl[badUrl]!.status, "failing");
    assertEquals(byUrl["http://127.0.0.1:1/metrics"]!.status, "failing");
    assertEquals(h.d?.status, "degraded");
    // the daemon still answers
    const pong = await nc.request("mr.site1.metrics.cmd.ping", "", { timeout: 5000 });
    assertEquals(pong.json<{ pong: boolean }>().pong, true);
    await node.stop();
    await nc.close();
  } finally {
    await good.shutdown();
    await broken.shutdown();
  }
});
