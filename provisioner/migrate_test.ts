import { assertEquals, assertRejects } from "@std/assert";
import { join } from "node:path";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { findNode } from "./nodes.ts";
import { addAccount, initOperator, operatorConfigLines } from "./operator.ts";
import { openRecords } from "./records.ts";
import { listTokens } from "./tokens.ts";

Deno.test("migrate - a home's file records (tokens.json, token-uses.log, revocations.json) are imported once", async () => {
  const home = await Deno.makeTempDir();
  try {
    await initOperator(home);
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    await addAccount(home, "acme", { server: srv.url });
    const rec = { customer: "acme", site: "s1", exp: 2e9, max_nodes: 3, uses: 0, revoked: false };
    await Deno.writeTextFile(
      join(home, "tokens.json"),
      JSON.stringify({ "t1+/=": { ...rec, nodes: {} } }),
    );
    // the old reload counted a name once: n1 enrolled twice is two uses here
    await Deno.writeTextFile(
      join(home, "token-uses.log"),
      [
        { jti: "t1+/=", node: "n1", user: "UOLD" },
        { jti: "t1+/=", node: "n1", user: "UNEW" },
        { jti: "t1+/=", node: "n2", user: "UTWO" },
      ].map((u) => JSON.stringify(u)).join("\n") + "\n",
    );
    await Deno.writeTextFile(
      join(home, "accounts", "acme", "revocations.json"),
      JSON.stringify({ UTWO: 1 }),
    );
    const o = { server: srv.url };
    assertEquals((await listTokens(home, o)).map((t) => [t.jti, t.uses]), [["t1+/=", 3]]);
    assertEquals((await findNode(home, "s1", "n1", undefined, o))?.users, ["UOLD", "UNEW"]);
    assertEquals((await findNode(home, "s1", "n2", undefined, o))?.revoked, true);
    await assertRejects(() => Deno.stat(join(home, "tokens.json")), Deno.errors.NotFound);
    await Deno.stat(join(home, "tokens.json.imported"));
    await using r = await openRecords(home, srv.url);
    assertEquals(await r.get("revocations", "acme"), { UTWO: 1 });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
