// Leader election across real daemons in the production topology: operator mode, each
// daemon with its own provisioned credentials.
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { assert, assertEquals } from "@std/assert";
import { type RunningNode, waitFor } from "./helpers/daemon.ts";
import { startOperatorFleet } from "./helpers/operator_fleet.ts";

const TTL_MS = 5_000;

async function electionEvents(nc: NatsConnection): Promise<Record<string, unknown>[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info("MR_EVENTS");
  const out: Record<string, unknown>[] = [];
  for (
    let seq = info.state.first_seq;
    info.state.messages > 0 && seq <= info.state.last_seq;
    seq++
  ) {
    const m = await jsm.streams.getMessage("MR_EVENTS", { seq }).catch(() => null);
    if (m && m.subject.endsWith(".ev.election")) out.push(m.json());
  }
  return out;
}

async function role(n: RunningNode): Promise<string | undefined> {
  const h = await n.health();
  const e = (h?.modules as Record<string, Record<string, unknown>> | undefined)?.election;
  return e?.role as string | undefined;
}

async function leaders(nodes: RunningNode[]): Promise<RunningNode[]> {
  const roles = await Promise.all(nodes.map(role));
  return nodes.filter((_, i) => roles[i] === "leader");
}

Deno.test("election - 3 daemons: exactly one leader, kill -9 elects another; static follower never leads", async () => {
  await using fleet = await startOperatorFleet({ streams: { electionTtlMs: TTL_MS } });
  const nc = fleet.admin;
  {
    const config = { election: { ttl: "5s" } };
    await using a = await fleet.startNode("plant", "a", { config });
    await using b = await fleet.startNode("plant", "b", { config });
    await using c = await fleet.startNode("plant", "c", { config });
    await using f = await fleet.startNode("plant", "f", {
      config: { ...config, role: "follower" },
    });
    const nodes = [a, b, c];
    const [first] = await waitFor(
      async () => {
        const l = await leaders(nodes);
        return l.length === 1 ? l : null;
      },
      20_000,
      "one leader",
    );
    // Every node's health agrees on who leads.
    await waitFor(
      async () => {
        const hs = await Promise.all(nodes.map((n) => n.health()));
        return hs.every((h) =>
          (h?.modules as Record<string, Record<string, unknown>>)?.election?.leader === first!.node
        );
      },
      10_000,
      "all see the leader",
    );
    const fh = (await f.health())?.modules as Record<string, Record<string, unknown>>;
    assertEquals(fh.election, { mode: "static", role: "follower", leader: null });

    await first!.kill();
    const rest = nodes.filter((n) => n !== first);
    const [second] = await waitFor(
      async () => {
        const l = await leaders(rest);
        return l.length === 1 ? l : null;
      },
      TTL_MS * 4,
      "a new leader",
    );
    assert(second!.node !== first!.node);
    assertEquals((await leaders(rest)).length, 1);
    assertEquals(await role(f), "follower");

    // won events from both leaders reached MR_EVENTS with the contract fields.
    const evs = await waitFor(
      async () => {
        const e = await electionEvents(nc);
        const winners = new Set(
          e.filter((x) => x.type === "io.machineroom.election.v1.won").map((x) => x.mrnode),
        );
        return winners.has(first!.node) && winners.has(second!.node) ? e : null;
      },
      20_000,
      "election won events",
    );
    const won = evs.find((e) => e.mrnode === second!.node)!;
    assertEquals(won.mrsite, "plant");
    assertEquals((won.data as Record<string, unknown>).ttl_ms, TTL_MS);
  }
});
