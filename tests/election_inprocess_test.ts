// Leader election in the production topology: operator mode, every candidate a provisioned
// node with its own credentials (it may write only its own site's election key).
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { assert, assertEquals } from "@std/assert";
import { waitFor } from "./helpers/daemon.ts";
import { type OperatorFleet, startOperatorFleet } from "./helpers/operator_fleet.ts";
import { createElection, type Election, type LeadershipChange } from "../src/election/mod.ts";
import { createElectionModule } from "../src/election/mod.ts";
import { silentLogger } from "../src/log/logger.ts";

const TTL = 5_000;

interface Candidate {
  node: string;
  nc: NatsConnection;
  election: Election;
  changes: LeadershipChange[];
}

async function candidate(fleet: OperatorFleet, node: string, site = "s1"): Promise<Candidate> {
  const p = await fleet.ensureNode(site, node);
  const nc = await p.connect({ reconnectTimeWait: 250, maxReconnectAttempts: -1 });
  const election = createElection({
    site,
    node,
    connection: () => nc,
    ttlMs: 60_000, // the bucket's 5 s TTL must win
    logger: silentLogger,
  });
  const changes: LeadershipChange[] = [];
  election.onChange((c) => changes.push(c));
  election.start();
  return { node, nc, election, changes };
}

async function closeAll(cs: Candidate[]) {
  for (const c of cs) {
    await c.election.stop({ release: false });
    await c.nc.close().catch(() => {});
  }
}

Deno.test("election - 3 candidates: exactly one leader; killing it elects another", async () => {
  await using fleet = await startOperatorFleet({ streams: { electionTtlMs: TTL } });
  const admin = fleet.admin;
  const cs = await Promise.all(["n1", "n2", "n3"].map((n) => candidate(fleet, n)));
  try {
    const first = await waitFor(
      () =>
        cs.filter((c) => c.election.isLeader()).length === 1
          ? cs.find((c) => c.election.isLeader())
          : undefined,
      15_000,
      "a leader",
    );
    // Stable: across more than one renewal period there is still exactly one leader.
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const leaders = cs.filter((c) => c.election.isLeader()).map((c) => c.node);
      assertEquals(leaders, [first.node]);
    }
    assertEquals(first.election.status().ttl_ms, TTL, "bucket TTL wins over the config");
    const kv = await new Kvm(admin).open("MR_ELECTION");
    assertEquals((await kv.get("site.s1"))?.string(), first.node);
    await waitFor(
      () => cs.every((c) => c.election.leader() === first.node),
      10_000,
      "followers see the leader",
    );

    // Kill the leader: connection gone, key not released; the key expires after the TTL.
    await first.election.stop({ release: false });
    await first.nc.close();
    const rest = cs.filter((c) => c !== first);
    const second = await waitFor(
      () => rest.find((c) => c.election.isLeader()),
      TTL * 3,
      "a new leader",
    );
    assertEquals(rest.filter((c) => c.election.isLeader()).length, 1);
    assert(second.changes.some((c) => c.leader));
    assertEquals((await kv.get("site.s1"))?.string(), second.node);

    // A graceful stop releases the key: the last one takes over via the watch.
    await second.election.stop();
    const third = rest.find((c) => c !== second)!;
    await waitFor(() => third.election.isLeader(), TTL * 3, "the third leader");
    assertEquals(second.changes.at(-1), {
      leader: false,
      reason: "shutdown",
      revision: second.changes.at(-1)!.revision,
    });
  } finally {
    await closeAll(cs);
  }
});

Deno.test("election - a leader that cannot renew (server down) steps down; one leader after", async () => {
  await using fleet = await startOperatorFleet({ streams: { electionTtlMs: TTL } });
  const srv = fleet.server;
  const cs = await Promise.all(["a", "b"].map((n) => candidate(fleet, n, "s2")));
  try {
    const leader = await waitFor(() => cs.find((c) => c.election.isLeader()), 15_000, "leader");
    await srv.stop();
    await waitFor(() => !leader.election.isLeader(), TTL * 2, "step down during the outage");
    const lost = leader.changes.at(-1)!;
    assertEquals(lost.leader, false);
    assert(lost.reason && lost.reason.length > 0);
    assert(cs.every((c) => !c.election.isLeader()), "nobody leads without the server");
    await srv.restart();
    await waitFor(
      () => cs.filter((c) => c.election.isLeader()).length === 1,
      TTL * 4,
      "one leader after the outage",
    );
  } finally {
    await closeAll(cs);
  }
});

Deno.test("election - static roles bypass the election", () => {
  const leader = createElectionModule({
    site: "s",
    node: "n",
    role: "leader",
    election: undefined,
  });
  const follower = createElectionModule({ site: "s", node: "m", role: "follower" });
  assertEquals(leader.isLeader(), true);
  assertEquals(follower.isLeader(), false);
  assertEquals(leader.health?.(), { mode: "static", role: "leader", leader: "n" });
  assertEquals(follower.health?.(), { mode: "static", role: "follower", leader: null });
});

Deno.test("election - a node restarted within the TTL takes its own key back", async () => {
  await using fleet = await startOperatorFleet({ streams: { electionTtlMs: 30_000 } });
  const x = await candidate(fleet, "x", "s3");
  const cs = [x];
  try {
    await waitFor(() => x.election.isLeader(), 10_000, "x leads");
    const rev = x.election.status().revision;
    // Crash: no release. With a 30 s TTL nobody else could lead for a while.
    await x.election.stop({ release: false });
    await x.nc.close();
    const y = await candidate(fleet, "y", "s3");
    const x2 = await candidate(fleet, "x", "s3");
    cs.push(y, x2);
    await waitFor(() => x2.election.isLeader(), 10_000, "restarted x leads again");
    assert(x2.election.status().revision > rev);
    assertEquals(y.election.isLeader(), false);
    await waitFor(() => y.election.leader() === "x", 10_000, "y sees x");
  } finally {
    await closeAll(cs);
  }
});

Deno.test("election - a node cannot campaign for another site (its creds write only its own key)", async () => {
  await using fleet = await startOperatorFleet({ streams: { electionTtlMs: TTL } });
  const p = await fleet.ensureNode("s1", "n1");
  const nc = await p.connect();
  // n1 of site s1 runs an election for site s2 with its own credentials
  const election = createElection({
    site: "s2",
    node: "n1",
    connection: () => nc,
    ttlMs: 60_000,
    logger: silentLogger,
  });
  election.start();
  try {
    await new Promise((r) => setTimeout(r, 1_500));
    assertEquals(election.isLeader(), false, "never leads another site");
    const kv = await new Kvm(fleet.admin).open("MR_ELECTION");
    assertEquals(await kv.get("site.s2"), null, "nothing written to site.s2");
    assert(election.status().last_error, "the refusal is reported");
  } finally {
    await election.stop({ release: false });
    await nc.close();
  }
});
