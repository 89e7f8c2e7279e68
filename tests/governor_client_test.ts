// Governors in the production topology: operator mode, each client a provisioned node with its
// own credentials, the vendor's mediator answering releases (as `mr-saas serve` runs it).
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { assert, assertEquals, assertRejects } from "@std/assert";
import { waitFor } from "./helpers/daemon.ts";
import { type OperatorFleet, startOperatorFleet } from "./helpers/operator_fleet.ts";
import { createGovernorClient, governorStream } from "../src/governor/mod.ts";

async function nodes(
  fleet: OperatorFleet,
  n: number,
): Promise<{ nc: NatsConnection; site: string; node: string }[] & AsyncDisposable> {
  const list = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const p = await fleet.provisionNode("site1", `n${i}`);
    return { nc: await p.connect(), site: "site1", node: `n${i}` };
  }));
  return Object.assign(list, {
    async [Symbol.asyncDispose]() {
      await Promise.all(list.map((c) => c.nc.close().catch(() => {})));
    },
  });
}

Deno.test("governor - 6 provisioned nodes never exceed capacity 2; releases go through the mediator", async () => {
  await using fleet = await startOperatorFleet();
  await using ns = await nodes(fleet, 6);
  let active = 0;
  let maxActive = 0;
  const seqs: number[] = [];
  const vendor = createGovernorClient(fleet.admin);
  await Promise.all(ns.map(async ({ nc, site, node }, i) => {
    const gov = createGovernorClient(nc, { holder: { site, node } });
    for (let round = 0; round < 2; round++) {
      const lease = await gov.acquire("rollout", {
        owner: `n${i}`,
        capacity: 2,
        timeoutMs: 30_000,
        minBackoffMs: 20,
        maxBackoffMs: 200,
      });
      assert(lease, `n${i} got no slot`);
      active++;
      maxActive = Math.max(maxActive, active);
      // what the server says while we hold: never more than capacity messages
      const holders = await vendor.holders("rollout");
      assert(holders.length <= 2, `holders ${JSON.stringify(holders)}`);
      assert(holders.some((h) => h.seq === lease.seq && h.holder === `site1.n${i}`));
      seqs.push(lease.seq);
      await new Promise((r) => setTimeout(r, 30 + Math.random() * 50));
      active--;
      assertEquals(await gov.release(lease), true);
    }
  }));
  assertEquals(new Set(seqs).size, 12);
  assert(maxActive <= 2, `max active ${maxActive}`);
  assertEquals(maxActive, 2, "the two slots were used concurrently");
  assertEquals(await vendor.info("rollout"), { capacity: 2, leaseMs: 600_000, held: 0 });
});

Deno.test("governor - one slot per node, renew keeps it, a crashed holder's slot expires", async () => {
  await using fleet = await startOperatorFleet();
  await using ns = await nodes(fleet, 2);
  const a = createGovernorClient(ns[0]!.nc, { holder: ns[0]! });
  const b = createGovernorClient(ns[1]!.nc, { holder: ns[1]! });
  const held = await a.acquire("one", { owner: "a", capacity: 1, leaseMs: 2_000 });
  assert(held);
  // the same node cannot take a second slot, even with capacity left
  assertEquals(await a.acquire("one", { owner: "a2" }), null);
  // renewing replaces its message, even with the governor full: still one holder, new ticket
  const renewed = await a.renew(held);
  assert(renewed && renewed.seq > held.seq);
  assertEquals((await b.holders("one")).map((h) => h.holder), ["site1.n0"]);
  assertEquals(await a.renew(held), null, "the old ticket is no longer the slot");
  // "a" crashes without releasing: its slot ages out after the lease
  await waitFor(async () => (await b.holders("one")).length === 0, 20_000, "slot expired");
  assertEquals(await a.releaseDetailed(renewed), { released: false, reason: "gone" });
});

Deno.test("governor - a node cannot touch another holder's slot, create or resize a governor directly", async () => {
  await using fleet = await startOperatorFleet();
  await using ns = await nodes(fleet, 2);
  const a = createGovernorClient(ns[0]!.nc, { holder: ns[0]! });
  const lease = await a.acquire("g", { owner: "a", capacity: 1 });
  assert(lease);
  // n1 asks the mediator to release n0's ticket: refused, slot kept
  const b = createGovernorClient(ns[1]!.nc, { holder: ns[1]! });
  await assertRejects(
    () => b.release({ name: "g", seq: lease.seq }),
    Error,
    "not held by site1.n1",
  );
  // n1 deletes the message itself: permissions violation
  const jsm = await jetstreamManager(ns[1]!.nc);
  await assertRejects(() => jsm.streams.deleteMessage(governorStream("g"), lease.seq));
  await assertRejects(() => jsm.streams.purge(governorStream("g")));
  await assertRejects(() => jsm.streams.delete(governorStream("g")));
  // a node cannot resize: ensure (vendor-side) is refused; the mediator never resizes
  await assertRejects(() => b.ensure("g", 50));
  assertEquals(await b.acquire("g", { owner: "b", capacity: 50 }), null, "capacity stays 1");
  // n1 publishes on n0's slot subject: permissions violation, nothing stored
  await assertRejects(() =>
    b.acquire("g", { owner: "b" }).then(() =>
      createGovernorClient(ns[1]!.nc, { holder: { site: "site1", node: "n0" } }).acquire("g", {
        owner: "forged",
      })
    )
  );
  const vendor = createGovernorClient(fleet.admin);
  assertEquals((await vendor.holders("g")).map((h) => [h.holder, h.seq]), [[
    "site1.n0",
    lease.seq,
  ]]);
  assertEquals(await a.release(lease), true);
  // the vendor resizes
  assertEquals(await vendor.ensure("g", 3), "updated");
  assertEquals((await vendor.info("g"))?.capacity, 3);
  await assertRejects(() => a.acquire("Bad.Name", { owner: "x", capacity: 1 }), TypeError);
  await assertRejects(() => vendor.ensure("g", 0), Error, "Invalid capacity");
  await assertRejects(() => a.acquire("absent", { owner: "x" }), Error, "does not exist");
});
