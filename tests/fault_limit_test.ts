/**
 * Fault matrix: a limit full at the server (the submissions stream at its `max_msgs` with
 * `discard: new`, as an account or stream quota refuses writes).
 *
 * Promised: the refusal is reported (health: replicator failures and last error), nothing
 * the node accepted locally is lost or dropped (it stays in the spool), other streams' data
 * (events) keeps flowing, and once the limit is raised every submission arrives exactly once.
 */
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { duplicateIds, readStream } from "./helpers/stream_read.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { atomicWrite } from "../src/util/atomic_write.ts";
import { createUlidFactory } from "../src/util/ulid.ts";

const ulid = createUlidFactory();

type H = {
  status: string;
  spool: { depth: number; dropped: number };
  replicator: { failures: number; last_error: string | null; parked: number };
};

Deno.test("fault - a full limit at the server: reported, nothing lost, delivered once raised", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  try {
    await ensureStreams(nc);
    const jsm = await jetstreamManager(nc);
    const si = await jsm.streams.info("MR_SUBMISSION");
    await jsm.streams.update("MR_SUBMISSION", { ...si.config, max_msgs: 5, discard: "new" });
    await using node = await startNode({
      natsUrl: srv.url,
      config: { settings: { heartbeat_interval: "200ms", facts_interval: "5m" } },
    });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const id = ulid();
      await atomicWrite(
        join(node.stateDir, "outbox", `${id}.json`),
        JSON.stringify({ subject: "orders", payload: { i }, priority: 2 }),
      );
      ids.push(id);
    }
    const h = await waitFor(
      async () => {
        const x = await node.health() as H | null;
        return x && x.replicator.failures > 0 && x.spool.depth >= 7 ? x : null;
      },
      30_000,
      "the refusal reported in health",
    );
    assert(h.replicator.last_error, "last error reported");
    assertEquals(h.spool.dropped, 0, "nothing dropped");
    assertEquals(h.replicator.parked, 0, "nothing parked: a full limit is not the message's fault");
    assertEquals((await readStream(nc, "MR_SUBMISSION")).length, 5);
    // the full stream does not hold back other streams' data: events keep arriving
    const alive = async () =>
      (await readStream(nc, "MR_EVENTS", "mr.site1.node1.ev.lifecycle")).length;
    const before = await alive();
    await waitFor(
      async () => (await alive()) > before + 5,
      20_000,
      "events while submissions are refused",
    );

    // the vendor raises the limit: everything arrives, once
    await jsm.streams.update("MR_SUBMISSION", { ...si.config, max_msgs: -1 });
    const got = await waitFor(
      async () => {
        const ms = await readStream(nc, "MR_SUBMISSION", "mr.site1.node1.submit.>");
        return ms.length >= 12 ? ms : null;
      },
      60_000,
      "all submissions after the limit was raised",
    );
    assertEquals(duplicateIds(got), []);
    assertEquals(new Set(got.map((m) => m.id)), new Set(ids));
    await waitFor(
      async () => ((await node.health()) as H | null)?.spool.depth === 0,
      30_000,
      "spool drained",
    );
  } finally {
    await nc.close();
  }
});
