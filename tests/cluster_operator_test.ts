/**
 * The cluster in operator mode (the production setup of docs/cluster.md): three servers with
 * the operator, system account and a full resolver each (its own resolver dir).
 *
 * Promised: a customer account pushed once (`mr-saas account add`, to one server) is known
 * to every server; its admin creates 3-replica streams; a user of the account publishes
 * and reads through any server, and keeps doing so with one server killed. A daemon enrolled
 * through the real provisioner (its own credentials and permissions) gets all three servers,
 * and when the one it is connected to is killed it carries on through another.
 */
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { assertEquals } from "@std/assert";
import { tempDir } from "./helpers/nats_server.ts";
import { startNatsCluster } from "./helpers/nats_cluster.ts";
import { waitFor } from "./helpers/daemon.ts";
import { join } from "node:path";
import { provisionCli } from "./helpers/provision.ts";
import { startNode } from "./helpers/daemon.ts";
import { lastMessage } from "./helpers/stream_read.ts";
import { atomicWrite } from "../src/util/atomic_write.ts";
import { ulid } from "../src/util/ulid.ts";
import {
  addAccount,
  ensureStreams,
  initOperator,
  issueToken,
  serveProvisioner,
} from "../provisioner/mod.ts";

globalThis.addEventListener("error", (e) => {
  if (String((e as ErrorEvent).error?.message ?? e.message).includes("ECONNRESET")) {
    e.preventDefault();
  }
});

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
  await cluster.restart(0);

  // an enrolled daemon: node credentials, every server in its config, failover
  const prov = await serveProvisioner({ home: home.path, servers: cluster.urls });
  const admin = await on(cluster.urls);
  try {
    const { token } = await issueToken(home.path, {
      server: cluster.urls[0]!,
      customer: "acme",
      site: "site1",
      provisioner: `http://127.0.0.1:${prov.addr.port}`,
      ttlMs: 3600_000,
    });
    await Deno.writeTextFile(join(home.path, "token.jwt"), token);
    const stateDir = join(home.path, "n1");
    const ok = await provisionCli(join(home.path, "token.jwt"), stateDir, "n1");
    assertEquals(ok.code, 0, ok.stderr);
    const cfg = JSON.parse(await Deno.readTextFile(join(stateDir, "config.json")));
    assertEquals(cfg.nats.servers, cluster.urls);
    await using node = await startNode({
      natsUrl: cluster.urls,
      stateDir,
      configFile: join(stateDir, "config.json"),
      config: {},
    });
    type H = { nats: { connected: boolean; server: string | null } };
    const on0 = await waitFor(
      async () => {
        const h = await node.health() as H | null;
        return h?.nats.connected && h.nats.server ? cluster.indexOfServer(h.nats.server) + 1 : 0;
      },
      20_000,
      "the node connected",
    ) - 1;
    const seq = await waitFor(
      async () => (await lastMessage(admin, "MR_EVENTS", "mr.site1.n1.ev.lifecycle"))?.seq,
      20_000,
      "the node's startup event",
    );
    await cluster.kill(on0);
    await waitFor(
      async () => {
        const h = await node.health() as H | null;
        const i = h?.nats.connected && h.nats.server ? cluster.indexOfServer(h.nats.server) : -1;
        return i >= 0 && i !== on0;
      },
      30_000,
      "the node on another server with its own credentials",
    );
    // the node's next events arrive through the other server (a command answers, too)
    const r = await waitFor(
      () => admin.request("mr.site1.n1.cmd.ping", "", { timeout: 3_000 }).catch(() => null),
      20_000,
      "ping through another server",
    );
    assertEquals(r.json<{ pong: boolean }>().pong, true);
    // JetStream through the other server with the node's own permissions: a submission
    const id = ulid();
    await atomicWrite(
      join(stateDir, "outbox", `${id}.json`),
      JSON.stringify({ subject: "orders", payload: { after: "failover" }, priority: 2 }),
    );
    const got = await waitFor(
      () => lastMessage(admin, "MR_SUBMISSION", "mr.site1.n1.submit.orders").catch(() => null),
      30_000,
      "a submission after the failover",
    );
    assertEquals(got.id, id);
    assertEquals(got.seq > 0 && seq > 0, true);
  } finally {
    await admin.close();
    await prov.shutdown();
  }
});
