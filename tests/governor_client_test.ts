import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { assert, assertEquals, assertRejects } from "@std/assert";
import { startNatsServer } from "./helpers/nats_server.ts";
import { waitFor } from "./helpers/daemon.ts";
import { createGovernorClient, governorStream } from "../src/governor/mod.ts";

async function conns(url: string, n: number): Promise<NatsConnection[] & AsyncDisposable> {
  const list = await Promise.all(Array.from({ length: n }, () => connect({ servers: url })));
  return Object.assign(list, {
    async [Symbol.asyncDispose]() {
      await Promise.all(list.map((c) => c.close().catch(() => {})));
    },
  });
}

Deno.test("governor - 6 clients on separate connections never exceed capacity 2", async () => {
  await using srv = await startNatsServer();
  await using ncs = await conns(srv.url, 6);
  let active = 0;
  let maxActive = 0;
  const seqs: number[] = [];
  await Promise.all(ncs.map(async (nc, i) => {
    const gov = createGovernorClient(nc);
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
      // What the server says while we hold: never more than capacity messages.
      const holders = await gov.holders("rollout");
      assert(holders.length <= 2, `holders ${JSON.stringify(holders)}`);
      assert(holders.some((h) => h.seq === lease.seq && h.owner === `n${i}`));
      seqs.push(lease.seq);
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 50));
      active--;
      assertEquals(await gov.release(lease), true);
    }
  }));
  assertEquals(seqs.length, 12);
  assertEquals(new Set(seqs).size, 12);
  assert(maxActive <= 2, `max active ${maxActive}`);
  assertEquals(maxActive, 2, "the two slots were used concurrently");
  const info = await createGovernorClient(ncs[0]!).info("rollout");
  assertEquals(info, { capacity: 2, leaseMs: 600_000, held: 0 });
});

Deno.test("governor - full governor refuses at once with timeout 0, expired lease frees", async () => {
  await using srv = await startNatsServer();
  await using ncs = await conns(srv.url, 2);
  const a = createGovernorClient(ncs[0]!);
  const b = createGovernorClient(ncs[1]!);
  const held = await a.acquire("one", { owner: "a", capacity: 1, leaseMs: 2_000 });
  assert(held);
  assertEquals(await b.acquire("one", { owner: "b", capacity: 1, leaseMs: 2_000 }), null);
  // "a" crashes without releasing: the slot comes back once its message ages out.
  const got = await b.acquire("one", {
    owner: "b",
    capacity: 1,
    leaseMs: 2_000,
    timeoutMs: 20_000,
  });
  assert(got, "slot freed after the lease");
  assert(got.seq > held.seq);
  assertEquals((await b.holders("one")).map((h) => h.owner), ["b"]);
  assertEquals(await a.release(held), false, "the expired slot was already gone");
  assertEquals(await b.release(got), true);
});

Deno.test("governor - capacity change resizes the stream; bad input is refused", async () => {
  await using srv = await startNatsServer();
  await using ncs = await conns(srv.url, 1);
  const gov = createGovernorClient(ncs[0]!);
  assertEquals(await gov.ensure("g", 1), "created");
  assertEquals(await gov.ensure("g", 1), "unchanged");
  assertEquals(await gov.ensure("g", 3), "updated");
  const si = await (await jetstreamManager(ncs[0]!)).streams.info(governorStream("g"));
  assertEquals(si.config.max_msgs, 3);
  assertEquals(si.config.discard, "new");
  await assertRejects(() => gov.acquire("Bad.Name", { owner: "x", capacity: 1 }), TypeError);
  await assertRejects(() => gov.ensure("g", 0), Error, "Invalid capacity");
  await assertRejects(() => gov.acquire("absent", { owner: "x" }), Error, "does not exist");
  // Three leases fit now.
  const leases = await Promise.all(
    [1, 2, 3].map((i) => gov.acquire("g", { owner: `o${i}`, capacity: 3 })),
  );
  assert(leases.every((l) => l !== null));
  await waitFor(async () => (await gov.holders("g")).length === 3, 5_000, "3 holders");
});
