/**
 * Fault matrix: the server cuts the node off as a slow consumer (a small `max_pending` and a
 * flood on the node's command subject, more than the node reads before the server's buffer
 * for it is full).
 *
 * Promised: the server's verdict shows on the node (a disconnect, then a reconnect counted
 * in health) and on the server (`slow_consumers`); the daemon keeps running; every
 * submission it accepted meanwhile arrives exactly once.
 */
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { duplicateIds, readStream } from "./helpers/stream_read.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { atomicWrite } from "../src/util/atomic_write.ts";
import { createUlidFactory } from "../src/util/ulid.ts";

const ulid = createUlidFactory();

Deno.test("fault - the server drops the node as a slow consumer: reconnects, nothing lost", async () => {
  await using srv = await startNatsServer({ config: "max_pending: 65536\nmax_payload: 32768" });
  const nc = await connect({ servers: srv.url });
  try {
    await ensureStreams(nc);
    await using node = await startNode({
      natsUrl: srv.url,
      config: { settings: { heartbeat_interval: "30s", facts_interval: "5m" } },
    });
    const slow = async () =>
      ((await (await fetch(`http://127.0.0.1:${srv.monitorPort}/varz`)).json()) as {
        slow_consumers: number;
      }).slow_consumers;
    const ids: string[] = [];
    const body = new Uint8Array(16 * 1024);
    await waitFor(
      async () => {
        // a burst the node cannot read as fast as the server queues it
        for (let i = 0; i < 400; i++) nc.publish("mr.site1.node1.cmd.ping", body);
        await nc.flush();
        const id = ulid();
        await atomicWrite(
          join(node.stateDir, "outbox", `${id}.json`),
          JSON.stringify({ subject: "orders", payload: { n: ids.length }, priority: 2 }),
        );
        ids.push(id);
        return (await slow()) > 0;
      },
      30_000,
      "the server to flag the node as a slow consumer",
    );
    for (let i = 0; i < 5; i++) {
      const id = ulid();
      await atomicWrite(
        join(node.stateDir, "outbox", `${id}.json`),
        JSON.stringify({ subject: "orders", payload: { n: ids.length }, priority: 2 }),
      );
      ids.push(id);
    }
    type H = { nats: { connected: boolean; reconnects: number } };
    await waitFor(
      async () => {
        const h = await node.health() as H | null;
        return h?.nats.connected && h.nats.reconnects > 0;
      },
      30_000,
      "the node reconnected and counted it",
    );
    assert(node.logs().some((l) => l.includes("disconnected from NATS")));
    const got = await waitFor(
      async () => {
        const ms = await readStream(nc, "MR_SUBMISSION", "mr.site1.node1.submit.>");
        return ms.length >= ids.length ? ms : null;
      },
      30_000,
      "every submission",
    );
    assertEquals(duplicateIds(got), []);
    assertEquals(new Set(got.map((m) => m.id)), new Set(ids));
  } finally {
    await nc.close();
  }
});
