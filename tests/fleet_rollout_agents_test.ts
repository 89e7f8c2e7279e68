// Staged rollout with the real agent manager: 6 daemons run an agent published with
// `rollout: {governor, capacity: 2}`; publishing v2 (whose mr_init takes a while) swaps
// every node, but never more than 2 at a time (intervals from each node's governor
// `enter` to its `agent.v1.updated`, both inside the held slot). Production topology:
// operator mode, each daemon with its own provisioned credentials, slots released through
// the mediator.
import { assert, assertEquals } from "@std/assert";
import { type RunningNode, waitFor } from "./helpers/daemon.ts";
import { startOperatorFleet } from "./helpers/operator_fleet.ts";
import { startS3 } from "./helpers/s3.ts";
import { compileWat } from "./helpers/wat.ts";
import { publishAgent } from "../provisioner/mod.ts";
import { createSigningKey } from "../src/desired/envelope.ts";
import { createGovernorClient } from "../src/governor/mod.ts";

const agent = (version: string, spin: number) =>
  compileWat(`(module
  (memory (export "memory") 1)
  (data (i32.const 16) "${version}")
  (func (export "mr_init") (result i32) (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const ${spin})))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 0))
  (func (export "mr_reconcile") (result i32) (i32.const 0)))`);

Deno.test("fleet - a rollout with capacity 2 swaps 6 real nodes, never more than 2 at once", async () => {
  const key = createSigningKey();
  await using fleet = await startOperatorFleet({ specKeys: [key.publicKey] });
  await using s3 = await startS3();
  const nc = fleet.admin;
  const nodes: RunningNode[] = [];
  type Ev = { type: string; time: string; mrnode: string; data: Record<string, unknown> };
  const events: Ev[] = [];
  nc.subscribe("mr.site1.*.ev.>", {
    callback: (_e, m) => {
      events.push(m.json<Ev>());
    },
  });
  try {
    const publish = async (wasm: Uint8Array) =>
      await publishAgent({
        customer: "acme",
        nc,
        wasm,
        agent: "slow-init",
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
          rollout: { governor: "rollout", capacity: 2 },
          triggers: { interval: "1m" },
          limits: { fuel: 4_000_000_000, timeout_ms: 30_000 },
        },
      });
    const v1 = await publish(await agent("v1", 1));
    for (let i = 1; i <= 6; i++) {
      nodes.push(
        await fleet.startNode("site1", `n${i}`, { config: { s3: s3.config } }),
      );
    }
    const started = () =>
      new Set(
        events.filter((e) => e.type === "io.machineroom.agent.v1.started").map((e) => e.mrnode),
      );
    await waitFor(() => started().size === 6, 60_000, "v1 on all 6 nodes");
    assert([...started()].length === 6);

    const v2 = await publish(await agent("v2", 150_000_000));
    assert(v2.sha256 !== v1.sha256);
    const updated = () => events.filter((e) => e.type === "io.machineroom.agent.v1.updated");
    await waitFor(() => updated().length === 6, 120_000, "v2 on all 6 nodes");

    // swap intervals: governor enter → agent updated, per node
    const enters = events.filter((e) => e.type === "io.machineroom.governor.v1.enter");
    const intervals = updated().map((u) => {
      const enter = enters.filter((e) => e.mrnode === u.mrnode).at(-1)!;
      return [Date.parse(enter.time), Date.parse(u.time)] as const;
    });
    assertEquals(intervals.length, 6);
    let maxOverlap = 0;
    for (const [s] of intervals) {
      const overlap = intervals.filter(([a, b]) => a <= s && s < b).length;
      maxOverlap = Math.max(maxOverlap, overlap);
    }
    assert(maxOverlap <= 2, `at most 2 swaps at once, saw ${maxOverlap}`);
    assert(enters.some((e) => Number(e.data.waited_ms) > 0), "some node waited for a slot");
    assertEquals(new Set(updated().map((u) => u.data.to)), new Set([v2.sha256]));
    // every slot was released (a node cannot delete messages: the mediator did)
    await waitFor(
      async () => (await createGovernorClient(nc).holders("rollout")).length === 0,
      10_000,
      "rollout governor empty",
    );
    assertEquals((await createGovernorClient(nc).info("rollout"))?.capacity, 2);
  } finally {
    for (const n of nodes) await n.stop();
  }
});
