import { assert, assertEquals } from "@std/assert";
import { openSpool } from "../spool/mod.ts";
import { createOutbox } from "./mod.ts";

Deno.test("outbox - events of one tick share a transaction; each promise resolves once durable", async () => {
  const spool = openSpool(":memory:");
  let commits = 0;
  const appendMany = spool.appendMany.bind(spool);
  spool.appendMany = (m) => {
    commits++;
    return appendMany(m);
  };
  const outbox = createOutbox({ spool, config: { customer: "c", site: "s", node: "n" } });
  const ids = await Promise.all(
    Array.from({ length: 100 }, (_, i) => outbox.event("bench", "tick", { i })),
  );
  assertEquals(new Set(ids).size, 100);
  assertEquals(spool.depth(), 100);
  assertEquals(commits, 1);
  // sequential producers each get their own commit
  await outbox.event("bench", "one", null);
  await outbox.submit("orders", { n: 1 });
  assertEquals(commits, 3);
  assertEquals(spool.depth(), 102);
  spool.close();
});

Deno.test("outbox - a failing message in a batch is rejected alone; invalid input rejects at once", async () => {
  const spool = openSpool(":memory:", { maxBytes: 4096 });
  const outbox = createOutbox({ spool, config: { customer: "c", site: "s", node: "n" } });
  const results = await Promise.allSettled([
    outbox.event("app", "small", { a: 1 }),
    outbox.submit("orders", { big: "x".repeat(10_000) }),
    outbox.metric({ name: "m", value: 1 }),
  ]);
  assertEquals(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
  assert(
    String((results[1] as PromiseRejectedResult).reason).includes("larger than the spool cap"),
  );
  assertEquals(spool.depth(), 2);
  const bad = await Promise.allSettled([
    outbox.event("Bad Category", "x", null),
    outbox.event("app", "x", null, { priority: 9 }),
    outbox.metric({ name: "m", value: NaN }),
  ]);
  assert(bad.every((r) => r.status === "rejected"));
  assertEquals(spool.depth(), 2);
  spool.close();
});
