/**
 * Fault matrix: the wall clock jumps ±1 h on the leader's host (libfaketime, Debian package
 * `faketime`, moving only the realtime clock of the daemon process while it runs; reported
 * as ignored when the library is missing).
 *
 * Promised: the election lease is measured on the monotonic clock, so a jump back neither
 * stretches the lease nor a jump forward ends it: the leader stays the only leader, never
 * loses and re-wins leadership, and the follower never takes over. The daemon keeps
 * replicating (its events still arrive).
 */
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { join } from "node:path";
import { startNatsServer, tempDir } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { lastMessage } from "./helpers/stream_read.ts";
import { ensureStreams } from "../provisioner/mod.ts";

const LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const haveFaketime = await Deno.stat(LIB).then(() => true, () => false);

Deno.test({
  name: "fault - the leader's wall clock jumps -1 h and +1 h: leadership holds, no flap",
  ignore: !haveFaketime,
  async fn() {
    await using srv = await startNatsServer();
    await using dir = await tempDir();
    const nc = await connect({ servers: srv.url });
    try {
      await ensureStreams(nc, { electionTtlMs: 5_000 });
      const offset = join(dir.path, "faketime");
      await Deno.writeTextFile(offset, "+0");
      const config = {
        election: { ttl: "5s" },
        settings: { heartbeat_interval: "500ms", facts_interval: "5m" },
      };
      await using a = await startNode({
        natsUrl: srv.url,
        site: "plant",
        node: "a",
        config,
        env: {
          LD_PRELOAD: LIB,
          FAKETIME_TIMESTAMP_FILE: offset,
          FAKETIME_NO_CACHE: "1",
          FAKETIME_DONT_FAKE_MONOTONIC: "1",
        },
      });
      const role = async (n: typeof a) =>
        ((await n.health())?.modules as Record<string, { role?: string }> | undefined)?.election
          ?.role;
      await waitFor(async () => (await role(a)) === "leader", 20_000, "a leads");
      await using b = await startNode({ natsUrl: srv.url, site: "plant", node: "b", config });
      await waitFor(async () => (await role(b)) === "follower", 20_000, "b follows");

      const watch = async (ms: number) => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          assertEquals(await role(b), "follower", "b never takes over");
          await new Promise((r) => setTimeout(r, 500));
        }
      };
      const lost = () => a.logs().filter((l) => l.includes("lost leadership"));
      for (const jump of ["-1h", "+1h"]) {
        const seq = (await lastMessage(nc, "MR_EVENTS", "mr.plant.a.ev.lifecycle"))?.seq ?? 0;
        await Deno.writeTextFile(offset, jump);
        await watch(11_000); // > 2 leases of 5 s
        assertEquals(lost(), [], `a lost leadership after a ${jump} jump`);
        assertEquals(await role(a), "leader");
        // still replicating: a's events keep arriving
        await waitFor(
          async () =>
            ((await lastMessage(nc, "MR_EVENTS", "mr.plant.a.ev.lifecycle"))?.seq ?? 0) > seq,
          10_000,
          `a's events after the ${jump} jump`,
        );
      }
      assert(!b.logs().some((l) => l.includes("won leadership")), "b never won");
    } finally {
      await nc.close();
    }
  },
});
