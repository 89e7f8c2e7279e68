import { assertEquals, assertRejects } from "@std/assert";
import { join } from "node:path";
import { findNode } from "./nodes.ts";

Deno.test("findNode - every key of a re-enrolled node; refuses to guess between customers", async () => {
  const home = await Deno.makeTempDir();
  try {
    const rec = (customer: string) => ({
      customer,
      site: "site1",
      exp: 0,
      max_nodes: 1,
      uses: 0,
      revoked: false,
      nodes: {},
    });
    await Deno.writeTextFile(
      join(home, "tokens.json"),
      JSON.stringify({ t1: rec("acme"), t2: rec("acme"), t3: rec("globex") }),
    );
    await Deno.writeTextFile(
      join(home, "token-uses.log"),
      [
        { jti: "t1", node: "n1", user: "UOLD" },
        { jti: "t2", node: "n1", user: "UNEW" },
        { jti: "t3", node: "n1", user: "UGLOBEX" },
      ].map((u) => JSON.stringify(u)).join("\n") + "\n",
    );
    await assertRejects(() => findNode(home, "site1", "n1"), Error, "more than one customer");
    assertEquals(await findNode(home, "site1", "n1", "acme"), {
      customer: "acme",
      user: "UNEW",
      users: ["UOLD", "UNEW"],
    });
    assertEquals((await findNode(home, "site1", "n1", "globex"))?.users, ["UGLOBEX"]);
    assertEquals(await findNode(home, "site1", "n2"), null);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
