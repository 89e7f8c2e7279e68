/**
 * The SaaS side as a 3-server JetStream cluster (one cluster for the whole file).
 *
 * Promised:
 * - `mr-saas init --replicas 3` creates every stream and bucket with 3 replicas.
 * - A node given one server URL learns the others from the cluster (discovery); a node
 *   given all three uses them all. Killing the server a node is connected to mid-stream
 *   moves it to another server, and every event and submission arrives exactly once.
 * - Killing the leader of a stream (events, desired state, election, a governor) leaves
 *   replication, the desired-state watch, election and governors working.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { assert, assertEquals } from "@std/assert";
import { join } from "node:path";
import { type NatsCluster, startNatsCluster } from "./helpers/nats_cluster.ts";
import { type RunningNode, startNode, waitFor } from "./helpers/daemon.ts";
import { duplicateIds, lastMessage, readStream } from "./helpers/stream_read.ts";
import { atomicWrite } from "../src/util/atomic_write.ts";
import { createUlidFactory } from "../src/util/ulid.ts";
import { createSigningKey, signSpec } from "../src/desired/envelope.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();
const ulid = createUlidFactory();

async function saas(cluster: NatsCluster, args: string[]) {
  const o = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "provisioner/main.ts"),
      "--server",
      cluster.urls.join(","),
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

async function mr(args: string[]) {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

/** Drops `n` submissions into the node's outbox as `machine-room submit` does; returns their ids. */
async function drop(node: RunningNode, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = ulid();
    await atomicWrite(
      join(node.stateDir, "outbox", `${id}.json`),
      JSON.stringify({
        subject: "orders",
        payload: { id },
        priority: 2,
      }),
    );
    ids.push(id);
  }
  return ids;
}

type Health = {
  nats?: { connected?: boolean; server?: string | null };
  spool?: { depth?: number; dropped?: number };
  replicator?: { parked?: number };
  modules?: Record<string, Record<string, unknown>>;
};

async function health(n: RunningNode): Promise<Health> {
  return (await n.health() ?? {}) as Health;
}

async function serverOf(cluster: NatsCluster, n: RunningNode): Promise<number> {
  const h = await health(n);
  return h.nats?.connected && h.nats.server ? cluster.indexOfServer(h.nats.server) : -1;
}

/** The stream's leader index, retried while the cluster settles after a restart. */
async function leaderOf(cluster: NatsCluster, nc: NatsConnection, stream: string) {
  return await waitFor(
    async () => (await cluster.streamLeader(nc, stream)) + 1,
    20_000,
    `a leader of ${stream}`,
  ) - 1;
}

const nodeConfig = {
  settings: { heartbeat_interval: "100ms", facts_interval: "5m" },
  election: { ttl: "5s" },
};

Deno.test("cluster - 3 servers: init --replicas 3, failover without loss, leaders killed", async (t) => {
  await using cluster = await startNatsCluster();
  const admin: NatsConnection = await cluster.connect();
  try {
    await t.step(
      "mr-saas init --replicas 3 creates every stream and bucket with 3 copies",
      async () => {
        const r = await saas(cluster, [
          "init",
          "--replicas",
          "3",
          "--election-ttl",
          "5s",
          "--json",
        ]);
        assertEquals(r.code, 0, r.stderr);
        const result = JSON.parse(r.stdout) as Record<string, string>;
        assertEquals(Object.values(result).every((v) => v === "created"), true, r.stdout);
        const jsm = await jetstreamManager(admin);
        for (
          const s of [
            "MR_EVENTS",
            "MR_NODES",
            "MR_SUBMISSION",
            "MR_METRICS",
            "KV_MR_DESIRED",
            "KV_MR_ELECTION",
          ]
        ) {
          const si = await jsm.streams.info(s);
          assertEquals(si.config.num_replicas, 3, s);
          assertEquals(si.cluster?.replicas?.length, 2, `${s}: ${JSON.stringify(si.cluster)}`);
        }
        const bad = await saas(cluster, ["init", "--replicas", "two"]);
        assertEquals(bad.code, 2, bad.stderr);
        assert(bad.stderr.includes("--replicas"), bad.stderr);
        const again = await saas(cluster, [
          "init",
          "--replicas",
          "3",
          "--election-ttl",
          "5s",
          "--json",
        ]);
        assertEquals(again.code, 0, again.stderr);
        assert(
          Object.values(JSON.parse(again.stdout)).every((v) => v === "unchanged"),
          again.stdout,
        );
        const add = await saas(cluster, [
          "governor",
          "add",
          "gate",
          "--capacity",
          "1",
          "--replicas",
          "3",
        ]);
        assertEquals(add.code, 0, add.stderr);
        assertEquals((await jsm.streams.info("MR_GOV_gate")).config.num_replicas, 3);
      },
    );

    // a: one URL (learns the rest by discovery); b: all three URLs
    await using a = await startNode({
      natsUrl: [cluster.urls[0]!],
      site: "plant",
      node: "a",
      config: nodeConfig,
    });
    await using b = await startNode({
      natsUrl: cluster.urls,
      site: "plant",
      node: "b",
      config: nodeConfig,
    });

    let survivor: RunningNode | null = null;

    await t.step(
      "killing a node's server mid-stream: it carries on through another, exactly once",
      async () => {
        const victim = await waitFor(
          async () => {
            const i = await serverOf(cluster, a);
            return i >= 0 ? i + 1 : 0;
          },
          20_000,
          "node a connected",
        ) - 1;
        const ids = await drop(a, 40);
        const idsB = await drop(b, 40);
        await waitFor(
          async () =>
            (await Array.fromAsync(Deno.readDir(join(a.stateDir, "outbox")))).length === 0,
          20_000,
          "first drops imported",
        );
        await cluster.kill(victim);
        // more data while a is failing over
        for (let i = 0; i < 5; i++) {
          ids.push(...await drop(a, 20));
          idsB.push(...await drop(b, 20));
          await new Promise((r) => setTimeout(r, 200));
        }
        const moved = await waitFor(
          async () => {
            const i = await serverOf(cluster, a);
            return i >= 0 && i !== victim ? i + 1 : 0;
          },
          30_000,
          "node a on another server",
        ) - 1;
        assert(moved !== victim);
        await cluster.restart(victim);
        for (const [n, want] of [[a, ids], [b, idsB]] as const) {
          const subs = await waitFor(
            async () => {
              const ms = await readStream(admin, "MR_SUBMISSION", `mr.plant.${n.node}.submit.>`);
              return ms.length >= want.length ? ms : null;
            },
            30_000,
            `submissions of ${n.node}`,
          );
          assertEquals(duplicateIds(subs), [], `${n.node}: duplicated submissions`);
          assertEquals(
            new Set(subs.map((m) => m.id)),
            new Set(want),
            `${n.node}: lost submissions`,
          );
        }
      },
    );

    await t.step(
      "killing stream leaders: replication, desired-state watch, election, governors",
      async () => {
        // election: one of a and b leads the site
        const siteLeader = async () => {
          const roles = await Promise.all(
            [a, b].map(async (n) => (await health(n)).modules?.election?.role),
          );
          const ls = [a, b].filter((_, i) => roles[i] === "leader");
          return ls.length === 1 ? ls[0] : null;
        };
        const leader = await waitFor(siteLeader, 30_000, "a site leader");
        survivor = leader === a ? b : a;

        // One server leads all four streams (leaders moved there by step-down), then dies.
        const x = await leaderOf(cluster, admin, "MR_EVENTS");
        for (const st of ["KV_MR_DESIRED", "KV_MR_ELECTION", "MR_GOV_gate"]) {
          await cluster.moveStreamLeader(admin, st, x);
        }
        const lifecycle = () => `mr.plant.${survivor!.node}.ev.lifecycle`;
        const before = (await waitFor(
          () => lastMessage(admin, "MR_EVENTS", lifecycle()),
          20_000,
          "MR_EVENTS readable",
        )).seq;
        await cluster.kill(x);
        await leader.kill(); // and the site's leading node with it
        const forger = createSigningKey();
        const env = (node: string) =>
          signSpec(
            { version: 1, customer: "acme", target: `node.plant.${node}`, agents: [] },
            forger.seed,
          );
        const other = survivor;
        await Promise.all([
          // replication: new alive events still land
          waitFor(
            async () => (await lastMessage(admin, "MR_EVENTS", lifecycle()))!.seq > before + 20,
            30_000,
            "events after the MR_EVENTS leader died",
          ),
          // desired state: a (forged) spec for the surviving node is still seen by its watch
          // and refused with an event
          (async () => {
            const kv = await new Kvm(admin).open("MR_DESIRED");
            await waitFor(
              () =>
                kv.put(`node.plant.${other.node}`, JSON.stringify(env(other.node))).then(() =>
                  true
                ),
              20_000,
              "desired-state put while the bucket leader is down",
            );
            try {
              await waitFor(
                async () => {
                  const m = await lastMessage(
                    admin,
                    "MR_EVENTS",
                    `mr.plant.${other.node}.ev.desired`,
                  );
                  return m?.json.type === "io.machineroom.desired.v1.rejected" &&
                    (m.json.data as { code?: string }).code === "untrusted_key";
                },
                60_000,
                `desired.rejected from ${other.node}`,
              );
            } catch (err) {
              const lines = other.logs().filter((l) => l.includes("desired"));
              throw new Error(`${(err as Error).message}\n${lines.slice(-10).join("\n")}`);
            }
          })(),
          // election: the other node takes over once the dead leader's lease runs out
          waitFor(
            async () => (await health(other)).modules?.election?.role === "leader",
            40_000,
            `${other.node} to lead after ${leader.node} died`,
          ),
          // governors: a 3-replica governor keeps granting slots
          (async () => {
            const run = await mr([
              "governor",
              "run",
              "gate",
              "--capacity",
              "1",
              "--timeout",
              "30",
              "--config",
              b.configPath, // all three URLs: a short-lived CLI connects once, without discovery
              "--",
              "true",
            ]);
            assertEquals(run.code, 0, run.stderr);
          })(),
        ]);
      },
    );

    await t.step("after all that: nothing parked, nothing dropped, no event twice", async () => {
      const n = survivor!;
      // the cluster may still be electing stream leaders after the kills: let the node drain
      // (the condition, not a time), then stop it; its shutdown flush must leave nothing
      await waitFor(
        async () => (await health(n)).spool?.depth === 0,
        60_000,
        "the survivor's spool drained",
      );
      const code = await n.stop();
      assertEquals(code, 0);
      const h = await health(n);
      assertEquals(h.spool?.depth, 0, "every spooled message acked by the cluster");
      assertEquals(h.spool?.dropped ?? 0, 0);
      assertEquals(h.replicator?.parked ?? 0, 0);
      const events = await waitFor(
        () => readStream(admin, "MR_EVENTS", `mr.plant.${n.node}.ev.>`),
        20_000,
        "MR_EVENTS readable",
      );
      assertEquals(duplicateIds(events), []);
      assert(events.some((e) => e.json.type === "io.machineroom.lifecycle.v1.shutdown"));
    });
  } finally {
    await admin.close().catch(() => {});
  }
});
