// Staged rollout: 6 nodes, governor capacity 2. src/agents (the agent manager that calls
// the governor around a hot-swap) had not landed when this was written, so each "node" is
// an in-process DaemonContext built from real parts (own NATS connection, spool, outbox,
// replicator) running the real `governor` module; the swap is what the agent manager does
// around it: acquire → swap → `agent.v1.updated` event → release. Production topology:
// operator mode, each node with its own provisioned credentials (and inbox prefix), slots
// released through the mediator; `mr-saas rollout status` with the admin creds.
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { assert, assertEquals } from "@std/assert";
import { join } from "node:path";
import { tempDir } from "./helpers/nats_server.ts";
import { waitFor } from "./helpers/daemon.ts";
import { type OperatorFleet, startOperatorFleet } from "./helpers/operator_fleet.ts";
import { rolloutStatus } from "../provisioner/mod.ts";
import { openSpool, type Spool } from "../src/spool/mod.ts";
import { createOutbox } from "../src/events/mod.ts";
import { createReplicator, type Replicator } from "../src/replicator/mod.ts";
import { createGovernorModule } from "../src/governor/mod.ts";
import { parseConfig } from "../src/config/schema.ts";
import { silentLogger } from "../src/log/logger.ts";
import type { DaemonContext, GovernorModule } from "../src/daemon/types.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const NEW = "b".repeat(64);

interface FakeNode {
  node: string;
  nc: NatsConnection;
  spool: Spool;
  replicator: Replicator;
  ctx: DaemonContext;
  governor: GovernorModule;
}

async function node(fleet: OperatorFleet, dir: string, name: string): Promise<FakeNode> {
  const p = await fleet.provisionNode("plant", name);
  const config = parseConfig({ ...p.config, state_dir: join(dir, name) });
  await Deno.mkdir(config.state_dir, { recursive: true });
  const nc = await p.connect();
  const spool = openSpool(join(config.state_dir, "spool.db"));
  const outbox = createOutbox({ spool, config });
  const js = jetstream(nc);
  const replicator = createReplicator({
    spool,
    js: () => js,
    nc: () => nc,
    logger: silentLogger,
    inboxPrefix: `_INBOX.plant.${name}`,
  });
  replicator.start();
  const ac = new AbortController();
  const mods = new Map<string, GovernorModule>();
  const ctx: DaemonContext = {
    config,
    logger: silentLogger,
    outbox,
    nats: () => Promise.resolve(nc),
    natsNow: () => nc,
    facts: () => ({}),
    onFacts: () => () => {},
    refreshFacts: () => Promise.resolve(),
    applySettings: () => {},
    signal: ac.signal,
    module: <T>(n: string) => mods.get(n) as T | undefined,
  } as DaemonContext;
  const governor = createGovernorModule();
  mods.set("governor", governor);
  await governor.start(ctx);
  return { node: name, nc, spool, replicator, ctx, governor };
}

Deno.test("fleet - staged rollout across 6 nodes with capacity 2 never swaps more than 2 at once", async () => {
  await using fleet = await startOperatorFleet();
  await using dir = await tempDir();
  const admin = fleet.admin;
  const nodes: FakeNode[] = [];
  try {
    // The desired spec names the rollout governor (envelope as in DESIGN §4; unsigned here,
    // `rollout status` only reads it).
    const spec = {
      version: 2,
      agents: [{
        name: "keeper",
        wasm: { sha256: NEW, size: 10, url: `s3://b/agents/sha256/${NEW}.wasm` },
        rollout: { governor: "rollout", capacity: 2 },
      }],
    };
    const kv = await new Kvm(admin).open("MR_DESIRED");
    await kv.put(
      "site.plant",
      JSON.stringify({ spec: btoa(JSON.stringify(spec)), sig: "x", key: "UKEY" }),
    );
    for (let i = 1; i <= 6; i++) nodes.push(await node(fleet, dir.path, `n${i}`));

    let active = 0;
    let maxActive = 0;
    const observed: number[] = [];
    await Promise.all(nodes.map(async (n) => {
      const owner = `${n.node}/keeper`;
      const r = await n.governor.acquire("rollout", { owner, capacity: 2, timeoutMs: 60_000 });
      assert(r.held, `${n.node} got no slot`);
      active++;
      maxActive = Math.max(maxActive, active);
      // What the SaaS sees during the swap.
      const st = await rolloutStatus(admin, "keeper");
      observed.push(st.holders.length);
      assert(st.holders.some((h) => h.owner === owner));
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 100)); // the hot-swap
      await n.ctx.outbox.event("agent", "updated", { name: "keeper", sha256: NEW }, {
        agent: "keeper",
      });
      active--;
      await n.governor.release("rollout", owner);
    }));
    assert(maxActive <= 2, `${maxActive} swaps at once`);
    assertEquals(maxActive, 2);
    assert(observed.every((h) => h >= 1 && h <= 2), `holders seen: ${observed}`);

    // The events reach MR_EVENTS; `mr-saas rollout status` shows the finished rollout.
    await Promise.all(nodes.map((n) => n.replicator.flush(10_000)));
    const out = await waitFor(
      async () => {
        const o = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            join(ROOT, "provisioner/main.ts"),
            "--server",
            fleet.server.url,
            "--creds",
            fleet.adminCreds,
            "rollout",
            "status",
            "keeper",
            "--json",
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assertEquals(o.code, 0, new TextDecoder().decode(o.stderr));
        const st = JSON.parse(new TextDecoder().decode(o.stdout));
        return Object.keys(st.nodes).length === 6 ? st : null;
      },
      20_000,
      "6 updated nodes in rollout status",
    );
    assertEquals(out.governor, "rollout");
    assertEquals(out.capacity, 2);
    assertEquals(out.holders, []);
    assertEquals(out.desired["site.plant"], { version: 2, sha256: NEW });
    for (let i = 1; i <= 6; i++) assertEquals(out.nodes[`plant.n${i}`].sha256, NEW);

    // Each node's governor module reported enter and exit in MR_EVENTS.
    const h = nodes[0]!.governor.health?.() as Record<string, unknown>;
    assertEquals(h.enter, 1);
    assertEquals(h.exit, 1);
    assertEquals(h.holding, {});
    const jsm = await jetstreamManager(admin);
    const si = await jsm.streams.info("MR_EVENTS");
    const types: string[] = [];
    for (let seq = si.state.first_seq; seq <= si.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage("MR_EVENTS", { seq }).catch(() => null);
      if (m?.subject.endsWith(".ev.governor")) types.push(m.json<{ type: string }>().type);
    }
    assertEquals(types.filter((t) => t === "io.machineroom.governor.v1.enter").length, 6);
    assertEquals(types.filter((t) => t === "io.machineroom.governor.v1.exit").length, 6);
  } finally {
    for (const n of nodes) {
      await n.governor.stop();
      await n.replicator.stop();
      n.spool.close();
      await n.nc.close();
    }
  }
});
