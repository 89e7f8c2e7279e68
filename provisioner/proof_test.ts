import { assert, assertEquals } from "@std/assert";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { initOperator, operatorConfigLines } from "./operator.ts";
import { auditKey } from "./audit.ts";
import { createProofs } from "./proof.ts";
import { openRecords } from "./records.ts";

Deno.test("proofs - a nonce is good once, before its expiry, at any provisioner of the home; forged ones never", async () => {
  const home = await Deno.makeTempDir();
  try {
    await initOperator(home);
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    await using r1 = await openRecords(home, srv.url);
    await using r2 = await openRecords(home, srv.url);
    let now = 1_000_000;
    const key = await auditKey(home);
    const p1 = createProofs({ key, records: r1, now: () => now });
    const p2 = createProofs({ key, records: r2, now: () => now });
    const n = p1.issue();
    assertEquals(await p2.take(n), true, "another provisioner accepts it");
    assertEquals(await p1.take(n), false, "…once");
    const late = p1.issue();
    now += 60_001;
    assertEquals(await p1.take(late), false, "expired");
    const [id, exp, tag] = p1.issue().split(".");
    assertEquals(await p1.take(`${id}.${Number(exp) + 3_600_000}.${tag}`), false, "longer life");
    const other = createProofs({
      key: crypto.getRandomValues(new Uint8Array(32)),
      records: r1,
      now: () => now,
    });
    assertEquals(await p1.take(other.issue()), false, "another vendor's nonce");
    for (const junk of ["", "a.b", "x".repeat(200), `${id}.${exp}`]) {
      assertEquals(await p1.take(junk), false, junk);
    }
    assert(!(await p1.verify("not-a-key", n, "sig")));
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
