// Cluster benchmarks (issue 14), printed as `cluster: …` lines and quoted in docs/cluster.md
// and README's Numbers table. One 3-server JetStream cluster on loopback for everything:
// - failover when the connected server is killed (SIGKILL): time from the kill to the
//   next JetStream ack, with the node's own connection options (src/nats/connect.ts:
//   reconnect wait 1 s + jitter, but a server not yet tried is dialled at once), p50 and
//   max over 10 kills; the killed server is restarted (and caught up) before the next;
// - events/s through the node's data path (outbox.event → spool → replicator → JetStream
//   ack, 256 in flight, as bench/spool_bench.ts) to MR_EVENTS with 1 replica and with 3,
//   in the same run on the same cluster.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { startNatsCluster } from "../tests/helpers/nats_cluster.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { natsOptions } from "../src/nats/connect.ts";
import { openSpool } from "../src/spool/mod.ts";
import { createReplicator } from "../src/replicator/mod.ts";
import { createOutbox } from "../src/events/mod.ts";
import { silentLogger } from "../src/log/logger.ts";
import { ulid } from "../src/util/ulid.ts";

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]!;
};
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
const dir = Deno.makeTempDirSync({ prefix: "mr-cluster-bench-" });

await using cluster = await startNatsCluster();
const admin = await cluster.connect();

// ---------------------------------------------------------------- failover
{
  await ensureStreams(admin, { replicas: 3 });
  const config = {
    site: "bench",
    node: "n1",
    nats: { servers: cluster.urls },
  } as Parameters<typeof natsOptions>[0];
  const nc = await connect({ ...(await natsOptions(config)), inboxPrefix: "_INBOX" });
  const js = jetstream(nc);
  let acked = 0;
  let lastAck = 0;
  let running = true;
  const pump = (async () => {
    for (let i = 0; running; i++) {
      const id = ulid();
      // retried with the same id until acked (JetStream de-duplicates), as the replicator does
      for (;;) {
        try {
          await js.publish("mr.bench.n1.ev.tick", "{}", { msgID: id, timeout: 1_000 });
          acked++;
          lastAck = performance.now();
          break;
        } catch {
          if (!running) return;
          await sleep(20);
        }
      }
    }
  })();
  const failovers: number[] = [];
  const leaderKills: boolean[] = [];
  for (let k = 0; k < 10; k++) {
    while (acked === 0 || performance.now() - lastAck > 100) await sleep(20);
    await sleep(200 + Math.random() * 300);
    const victim = cluster.indexOfServer(nc.getServer());
    leaderKills.push((await cluster.streamLeader(admin, "MR_EVENTS")) === victim);
    const before = acked;
    const killedAt = performance.now();
    await cluster.kill(victim);
    while (!(acked > before + 1 && lastAck > killedAt)) await sleep(2);
    failovers.push(lastAck - killedAt);
    await cluster.restart(victim);
  }
  running = false;
  await pump;
  await nc.close();
  const lead = failovers.filter((_, i) => leaderKills[i]);
  const other = failovers.filter((_, i) => !leaderKills[i]);
  const stat = (xs: number[]) =>
    xs.length ? `p50 ${pct(xs, 50).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms` : "—";
  console.log(
    `cluster: failover after SIGKILL of the connected server (10 kills, 3 servers, R3): ` +
      `${stat(failovers)}; when it also led MR_EVENTS (${lead.length}×): ${stat(lead)}; ` +
      `otherwise (${other.length}×): ${stat(other)} ` +
      `(all: ${failovers.map((x) => x.toFixed(0)).join(", ")})`,
  );
}

// ---------------------------------------------------------------- R1 vs R3 throughput
const E2E = 10_000;
const SIZE_DATA = { i: 0, pad: "x".repeat(200) };
const jsm = await jetstreamManager(admin);
const throughput = async (replicas: number): Promise<number> => {
  for (const s of ["MR_EVENTS", "MR_NODES", "MR_SUBMISSION", "MR_METRICS"]) {
    await jsm.streams.delete(s).catch(() => {});
  }
  await ensureStreams(admin, { replicas });
  const nc = await connect({ servers: cluster.urls });
  const js = jetstream(nc);
  const spool = openSpool(`${dir}/e2e-${ulid()}.db`);
  const rep = createReplicator({ spool, js: () => js, nc: () => nc, logger: silentLogger });
  const outbox = createOutbox({ spool, config: { customer: "acme", site: "s1", node: "n1" } });
  rep.start();
  const t0 = performance.now();
  for (let i = 0; i < E2E; i += 256) {
    const window = [];
    for (let j = i; j < Math.min(E2E, i + 256); j++) {
      window.push(outbox.event("bench", "tick", SIZE_DATA));
    }
    await Promise.all(window);
  }
  const ok = await rep.flush(120_000);
  const dt = performance.now() - t0;
  if (!ok) throw new Error("cluster throughput bench did not drain");
  await rep.stop();
  spool.close();
  await nc.close();
  return E2E / (dt / 1000);
};
const r1: number[] = [];
const r3: number[] = [];
for (let round = 0; round < 2; round++) {
  r1.push(await throughput(1));
  r3.push(await throughput(3));
}
const best = (xs: number[]) => Math.max(...xs);
console.log(
  `cluster: outbox → spool → replicator → JetStream ack, ${E2E} events, 256 in flight, ` +
    `3-server cluster: 1 replica ${best(r1).toFixed(0)}/s, 3 replicas ${best(r3).toFixed(0)}/s ` +
    `(${(best(r3) / best(r1) * 100).toFixed(0)} %; best of 2 rounds each, interleaved)`,
);

await admin.close();
await Deno.remove(dir, { recursive: true }).catch(() => {});

Deno.bench("cluster (numbers printed above)", () => {});
