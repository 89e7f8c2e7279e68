/**
 * The cluster in operator mode (the production setup of docs/cluster.md): three servers with
 * the operator, system account and a full resolver each (its own resolver dir).
 *
 * Promised: a customer account pushed once (`mr-saas account add`, to one server) is known
 * to every server; its admin creates 3-replica streams; a user of the account publishes
 * and reads through any server, and keeps doing so with one server killed.
 */
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { assertEquals } from "@std/assert";
import { tempDir } from "./helpers/nats_server.ts";
import { startNatsCluster } from "./helpers/nats_cluster.ts";
import { waitFor } from "./helpers/daemon.ts";
import { addAccount, ensureStreams, initOperator } from "../provisioner/mod.ts";

Deno.test("cluster - operator mode: an account pushed to one server works on all three, with one down", async () => {
  await using home = await tempDir("mr-cluster-op-");
  await initOperator(home.path, { natsPort: 4222 });
  await using cluster = await startNatsCluster({ operatorHome: home.path });
  const { adminCreds } = await addAccount(home.path, "acme", { server: cluster.urls[0]! });
  const creds = await Deno.readFile(adminCreds);
  const on = (url: string | string[]) =>
    connect({ servers: url, authenticator: credsAuthenticator(creds), timeout: 5_000 });

  // every server accepts the account's user (the resolvers shared the pushed JWT)
  const per: NatsConnection[] = [];
  try {
    for (const url of cluster.urls) {
      per.push(await waitFor(() => on(url).catch(() => null), 20_000, `acme on ${url}`));
    }
    await ensureStreams(per[0]!, { replicas: 3 });
    const si = await (await jetstreamManager(per[1]!)).streams.info("MR_EVENTS");
    assertEquals(si.config.num_replicas, 3);
    for (const [i, nc] of per.entries()) {
      await jetstream(nc).publish(`mr.s.n.ev.test`, JSON.stringify({ i }), { msgID: `m${i}` });
    }
    assertEquals(
      (await (await jetstreamManager(per[2]!)).streams.info("MR_EVENTS")).state.messages,
      3,
    );
  } finally {
    for (const nc of per) await nc.close().catch(() => {});
  }

  // one server down: a user given all three still publishes, and the stream holds it
  await cluster.kill(0);
  const nc = await on(cluster.urls);
  try {
    await waitFor(
      () =>
        jetstream(nc).publish("mr.s.n.ev.test", "{}", { msgID: "after-kill", timeout: 2_000 })
          .then(() => true),
      30_000,
      "publish with a server down",
    );
    const st = await waitFor(
      () => jetstreamManager(nc).then((m) => m.streams.info("MR_EVENTS")),
      20_000,
      "MR_EVENTS info",
    );
    assertEquals(st.state.messages, 4);
  } finally {
    await nc.close();
  }
});
