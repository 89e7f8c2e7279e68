// The permission matrix: every row of provisioner/permissions.ts's table, walked with a
// real node's provisioned credentials against nats-server in operator mode. Allowed rows
// must pass the server's permission check, denied and absent rows must be refused with a
// permissions violation naming the subject. The docs' who-can-do-what tables are the
// table's own rendering.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { errors, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { startOperatorFleet } from "./helpers/operator_fleet.ts";
import {
  NODE_PERMISSION_TABLE,
  nodePermissions,
  permissionTableMarkdown,
  rowSubjects,
} from "../provisioner/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** Watches a connection's permission errors; `check` says whether `subject` was refused. */
function violations(nc: NatsConnection) {
  const seen: { op: string; subject: string }[] = [];
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "error" && s.error instanceof errors.PermissionViolationError) {
        seen.push({ op: s.error.operation, subject: s.error.subject });
      }
    }
  })();
  return {
    async refused(op: "publish" | "subscription", subject: string): Promise<boolean> {
      await nc.flush(); // the server answers in order: a -ERR comes before the PONG
      await nc.flush();
      return seen.some((v) => v.op === op && v.subject === subject);
    },
  };
}

/** A publishable subject for a pattern (wildcards become a concrete token). */
const concrete = (s: string) => s.replaceAll(">", "probe").replaceAll("*", "probe");

Deno.test("permission matrix - every row of the node permission table holds with real creds", async () => {
  await using fleet = await startOperatorFleet();
  const me = await fleet.provisionNode("site1", "n1");
  const nc = await me.connect();
  const v = violations(nc);
  const checked: string[] = [];
  try {
    for (const row of NODE_PERMISSION_TABLE) {
      const subjects = rowSubjects(row, { site: "site1", node: "n1" });
      assert(subjects.length > 0, `${row.id} names subjects`);
      for (const subj of subjects) {
        let refused: boolean;
        if (row.kind === "pub") {
          const s = concrete(subj);
          nc.publish(s, "");
          refused = await v.refused("publish", s);
        } else {
          const sub = nc.subscribe(subj);
          refused = await v.refused("subscription", subj);
          sub.unsubscribe();
        }
        const want = row.effect === "allow" ? "allowed" : "refused";
        assertEquals(
          refused ? "refused" : "allowed",
          want,
          `row ${row.id} (${row.effect}): ${row.kind} ${subj}`,
        );
        checked.push(`${row.id}:${subj}`);
      }
    }
    // still connected after every refusal
    assert(!nc.isClosed());
  } finally {
    await nc.close();
  }
  assertEquals(checked.length, NODE_PERMISSION_TABLE.reduce((n, r) => n + r.subjects.length, 0));
});

Deno.test("permission matrix - the node reads exactly its own desired-state keys (NATS 2.9 per-key API)", async () => {
  await using fleet = await startOperatorFleet();
  const kvAdmin = await new Kvm(fleet.admin).open("MR_DESIRED");
  for (const k of ["site.site1", "node.site1.n1", "site.site2", "node.site1.n2"]) {
    await kvAdmin.put(k, `value of ${k}`);
  }
  const me = await fleet.provisionNode("site1", "n1");
  const nc = await me.connect();
  try {
    // direct gets carry the key in the API subject (a plain MSG.GET carries it in the body)
    const kv = await new Kvm(nc).open("MR_DESIRED", { allow_direct: true });
    assertEquals((await kv.get("site.site1"))?.string(), "value of site.site1");
    assertEquals((await kv.get("node.site1.n1"))?.string(), "value of node.site1.n1");
    for (const other of ["site.site2", "node.site1.n2"]) {
      let err: unknown = null;
      await kv.get(other).catch((e) => (err = e));
      assert(err, `get ${other} refused`);
    }
    // a watch of its own key works; of another key it is refused
    const w = await kv.watch({ key: "site.site1" });
    for await (const e of w) {
      assertEquals(e.string(), "value of site.site1");
      break;
    }
    let werr: unknown = null;
    try {
      const w2 = await kv.watch({ key: "site.site2" });
      for await (const _ of w2) break;
    } catch (e) {
      werr = e;
    }
    assert(werr, "watch of another site's key refused");
    // every key at once (a watch of ">") is refused as well
    let allErr: unknown = null;
    try {
      const w3 = await kv.watch();
      for await (const _ of w3) break;
    } catch (e) {
      allErr = e;
    }
    assert(allErr, "watch of the whole bucket refused");
  } finally {
    await nc.close();
  }
});

Deno.test("permission matrix - the JWT is the table's; docs show the table", async () => {
  const p = nodePermissions("s1", "n1");
  assert(p.pub.allow.includes("mr.s1.n1.>"));
  assert(p.pub.allow.includes("$KV.MR_ELECTION.site.s1"));
  assert(!p.pub.allow.some((s) => s.includes("MR_ELECTION.site.*")));
  assert(p.pub.deny.includes("$JS.API.STREAM.DELETE.>"));
  assertEquals(p.sub.allow.sort(), ["_INBOX.s1.n1.>", "mr.s1.n1.cmd.>"]);
  const table = permissionTableMarkdown();
  for (const f of ["docs/provisioning.md", "README.md"]) {
    assertStringIncludes(await Deno.readTextFile(`${ROOT}${f}`), table, `${f} holds the table`);
  }
});
