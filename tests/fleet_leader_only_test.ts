// A `leader_only` agent (the C example threshold-check, published with mr-saas's
// publishAgent) runs on exactly one of 3 real daemons, and moves to the new leader when
// the leader is killed. Production topology: operator mode, each daemon with its own
// provisioned credentials.
import { assert, assertEquals } from "@std/assert";
import { join } from "node:path";
import { type RunningNode, waitFor } from "./helpers/daemon.ts";
import { startOperatorFleet } from "./helpers/operator_fleet.ts";
import { startS3 } from "./helpers/s3.ts";
import { publishAgent } from "../provisioner/mod.ts";
import { createSigningKey } from "../src/desired/envelope.ts";

const ROOT = new URL("../", import.meta.url).pathname;

type Health = { modules?: { election?: { role?: string }; agents?: { running?: number } } };

async function state(n: RunningNode): Promise<{ leader: boolean; running: number }> {
  const h = (await n.health()) as Health | null;
  return {
    leader: h?.modules?.election?.role === "leader",
    running: h?.modules?.agents?.running ?? 0,
  };
}

Deno.test("fleet - a leader_only example agent runs only on the leader and moves with it", async () => {
  const build = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "scripts/build_examples.ts"), "threshold-check"],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert(build.success, new TextDecoder().decode(build.stderr));
  const key = createSigningKey();
  await using fleet = await startOperatorFleet({
    specKeys: [key.publicKey],
    streams: { electionTtlMs: 5_000 },
  });
  await using s3 = await startS3();
  const nc = fleet.admin;
  const nodes: RunningNode[] = [];
  try {
    // limits the host always exceeds, so the agent reports an alarm once it runs
    await publishAgent({
      customer: "acme",
      nc,
      wasm: await Deno.readFile(join(ROOT, "wasm-examples/dist/threshold-check.wasm")),
      agent: "threshold-check",
      site: "site1",
      bucketUrl: `s3://${s3.bucket}`,
      s3: {
        endpoint: s3.endpoint,
        region: s3.region,
        accessKeyId: s3.accessKeyId,
        secretAccessKey: s3.secretAccessKey,
      },
      seed: key.seed,
      fields: {
        config: { memory_percent: 0 },
        grants: { facts: true, events: true },
        triggers: { interval: "1s" },
        leader_only: true,
      },
    });
    const alarms = new Set<string>();
    nc.subscribe("mr.site1.*.ev.agent", {
      callback: (_e, m) => {
        const ev = m.json<{ type: string; mrnode: string }>();
        if (ev.type === "io.machineroom.agent.threshold-check.alarm.raised") alarms.add(ev.mrnode);
      },
    });
    for (const name of ["a", "b", "c"]) {
      nodes.push(
        await fleet.startNode("site1", name, {
          config: { s3: s3.config, election: { ttl: "5s" } },
        }),
      );
    }
    const settled = async () => {
      const st = await Promise.all(nodes.map(state));
      const leaders = st.filter((s) => s.leader).length;
      const running = st.reduce((n, s) => n + s.running, 0);
      return leaders === 1 && running === 1 && st.every((s) => s.running === 0 || s.leader)
        ? st
        : null;
    };
    const st = await waitFor(settled, 30_000, "one leader running the agent");
    const leader = nodes[st.findIndex((s) => s.leader)]!;
    await waitFor(() => alarms.has(leader.node), 20_000, "the leader's agent reports");
    assertEquals([...alarms], [leader.node]);

    await leader.kill();
    nodes.splice(nodes.indexOf(leader), 1);
    const st2 = await waitFor(settled, 30_000, "the agent moved to the new leader");
    const next = nodes[st2.findIndex((s) => s.leader)]!;
    assert(next.node !== leader.node);
    await waitFor(() => alarms.has(next.node), 20_000, "the new leader's agent reports");
  } finally {
    for (const n of nodes) await n.stop();
  }
});
