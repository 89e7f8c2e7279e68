// Fleet coordination benchmarks (issue 7), printed as `fleet: …` lines and quoted in
// docs/fleet.md:
// - leader failover time at TTL 5 s (p50 over 10 kills; "kill" = close the connection
//   without releasing the key),
// - governor acquire/release latency (p50/p99, uncontended),
// - 1,000 lightweight in-process nodes watching their MR_DESIRED key against one
//   nats-server: time for one new `site.<site>` put to reach all of them, and server RSS.
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { createElection, type Election } from "../src/election/mod.ts";
import { createGovernorClient, startGovernorMediator } from "../src/governor/mod.ts";
import { silentLogger } from "../src/log/logger.ts";

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]!;
};
const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 0)} ms`;
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
const MB = 1024 * 1024;

// ---------------------------------------------------------------- failover
{
  await using srv = await startNatsServer();
  const admin = await connect({ servers: srv.url });
  const TTL = 5_000;
  await ensureStreams(admin, { electionTtlMs: TTL });
  type Cand = { nc: NatsConnection; e: Election };
  let n = 0;
  const spawn = async (): Promise<Cand> => {
    const nc = await connect({ servers: srv.url });
    const e = createElection({
      site: "bench",
      node: `c${n++}`,
      connection: () => nc,
      logger: silentLogger,
    });
    e.start();
    return { nc, e };
  };
  let cands: Cand[] = await Promise.all([spawn(), spawn(), spawn()]);
  const failovers: number[] = [];
  const t0 = performance.now();
  for (let k = 0; k < 10; k++) {
    let leader: Cand | undefined;
    while (!(leader = cands.find((c) => c.e.isLeader()))) await sleep(10);
    await sleep(Math.random() * 2_000); // kill at a random point of the renewal cycle
    const killedAt = performance.now();
    await leader.e.stop({ release: false });
    await leader.nc.close();
    cands = cands.filter((c) => c !== leader);
    while (!cands.some((c) => c.e.isLeader())) await sleep(5);
    failovers.push(performance.now() - killedAt);
    cands.push(await spawn());
  }
  for (const c of cands) {
    await c.e.stop({ release: false });
    await c.nc.close();
  }
  await admin.close();
  console.log(
    `fleet: leader failover at TTL 5 s over ${failovers.length} kills: p50 ${
      ms(pct(failovers, 50))
    }, max ${ms(Math.max(...failovers))} (bound TTL + TTL/4 = 6250 ms; ${
      ((performance.now() - t0) / 1000).toFixed(0)
    } s total)`,
  );
}

// ---------------------------------------------------------------- governor
{
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  // releases go through the mediator, as for a provisioned node (`mr-saas serve` runs it)
  const mediator = await startGovernorMediator(await connect({ servers: srv.url }));
  const gov = createGovernorClient(nc, { holder: { site: "bench", node: "b" } });
  await gov.ensure("bench", 1);
  const acq: number[] = [];
  const rel: number[] = [];
  for (let i = 0; i < 300; i++) {
    const a = performance.now();
    const lease = await gov.acquire("bench", { owner: "b" });
    const b = performance.now();
    if (!lease) throw new Error("no slot");
    await gov.release(lease);
    const c = performance.now();
    if (i >= 20) { // warm-up
      acq.push(b - a);
      rel.push(c - b);
    }
  }
  await mediator.stop();
  await nc.close();
  console.log(
    `fleet: governor acquire p50 ${ms(pct(acq, 50))} p99 ${ms(pct(acq, 99))}; release p50 ${
      ms(pct(rel, 50))
    } p99 ${ms(pct(rel, 99))} (uncontended, ${acq.length} rounds, local nats-server)`,
  );
}

// ---------------------------------------------------------------- 1,000 watchers
{
  const NODES = 1_000;
  const CONNS = 10; // 100 lightweight nodes multiplexed per connection
  const PUTS = 10;
  await using srv = await startNatsServer();
  const admin = await connect({ servers: srv.url });
  await ensureStreams(admin);
  const rssBefore = await srv.rss();
  const kvAdmin = await new Kvm(admin).open("MR_DESIRED");
  await kvAdmin.put("site.big", JSON.stringify({ version: 0 }));
  const conns = await Promise.all(
    Array.from({ length: CONNS }, () => connect({ servers: srv.url })),
  );
  // Per node: the last version seen and when.
  const seen = new Array<number>(NODES).fill(-1);
  const at = new Array<number>(NODES).fill(0);
  const waiters: (() => void)[] = [];
  const t0 = performance.now();
  const watchers = [];
  for (let i = 0; i < NODES; i++) {
    const kv = await new Kvm(conns[i % CONNS]!).open("MR_DESIRED");
    // Each node watches its site key and its own node key (two ordered consumers).
    for (const key of ["site.big", `node.big.n${i}`]) {
      const w = await kv.watch({ key });
      watchers.push(w);
      (async () => {
        for await (const e of w) {
          if (e.key !== "site.big" || e.operation !== "PUT") continue;
          seen[i] = (JSON.parse(e.string()) as { version: number }).version;
          at[i] = performance.now();
          for (const f of waiters.splice(0)) f();
        }
      })();
    }
  }
  while (seen.some((v) => v !== 0)) await sleep(20);
  const setup = performance.now() - t0;
  const rssWatching = await srv.rss();
  const toAll: number[] = [];
  const perNode: number[] = [];
  for (let v = 1; v <= PUTS; v++) {
    const put = performance.now();
    await kvAdmin.put("site.big", JSON.stringify({ version: v }));
    while (seen.some((x) => x !== v)) {
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
    toAll.push(Math.max(...at) - put);
    for (const t of at) perNode.push(t - put);
    await sleep(100);
  }
  const rssAfter = await srv.rss();
  for (const w of watchers) w.stop();
  await Promise.all(conns.map((c) => c.close()));
  await admin.close();
  console.log(
    `fleet: ${NODES} nodes (${NODES * 2} KV watches on ${CONNS} connections; set up in ${
      (setup / 1000).toFixed(1)
    } s): a new site.<site> put reaches all in p50 ${ms(pct(toAll, 50))} p99 ${
      ms(pct(toAll, 99))
    } over ${PUTS} puts; per-node delivery p50 ${ms(pct(perNode, 50))} p99 ${
      ms(pct(perNode, 99))
    }; nats-server RSS ${(rssBefore / MB).toFixed(0)} MB idle → ${
      (rssWatching / MB).toFixed(0)
    } MB watching → ${(rssAfter / MB).toFixed(0)} MB after the puts`,
  );
}

// A server for the Deno.bench below (killed on unload).
const srv = await startNatsServer();
addEventListener("unload", () => {
  try {
    Deno.kill(srv.pid, "SIGKILL");
  } catch { /* gone */ }
  try {
    Deno.removeSync(srv.dir, { recursive: true });
  } catch { /* gone */ }
});
const benchNc = await connect({ servers: srv.url });
await startGovernorMediator(benchNc);
const benchGov = createGovernorClient(benchNc, { holder: { site: "bench", node: "b" } });
await benchGov.ensure("deno-bench", 1);

Deno.bench("governor - acquire + release (uncontended)", { n: 200, warmup: 20 }, async () => {
  const lease = await benchGov.acquire("deno-bench", { owner: "bench" });
  if (!lease) throw new Error("no slot");
  await benchGov.release(lease);
});
