import { assertEquals, assertRejects } from "@std/assert";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { findNode } from "./nodes.ts";
import { initOperator, operatorConfigLines } from "./operator.ts";
import { nodeKey, type NodeRecord, openRecords } from "./records.ts";

Deno.test("findNode - every key of a re-enrolled node; refuses to guess between customers", async () => {
  const home = await Deno.makeTempDir();
  try {
    await initOperator(home);
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    await using r = await openRecords(home, srv.url);
    const rec = (customer: string, users: string[]): NodeRecord => ({
      customer,
      site: "site1",
      node: "n1",
      current: users.at(-1)!,
      keys: users.map((user) => ({ user, jti: "t", time: "2026-01-01T00:00:00Z" })),
      revoked: false,
    });
    await r.create("nodes", nodeKey("acme", "site1", "n1"), rec("acme", ["UOLD", "UNEW"]));
    await r.create("nodes", nodeKey("globex", "site1", "n1"), rec("globex", ["UGLOBEX"]));
    const o = { records: r };
    await assertRejects(
      () => findNode(home, "site1", "n1", undefined, o),
      Error,
      "more than one customer",
    );
    assertEquals(await findNode(home, "site1", "n1", "acme", o), {
      customer: "acme",
      user: "UNEW",
      users: ["UOLD", "UNEW"],
      revoked: false,
    });
    assertEquals((await findNode(home, "site1", "n1", "globex", o))?.users, ["UGLOBEX"]);
    assertEquals(await findNode(home, "site1", "n2", undefined, o), null);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
