// The provisioning audit log: a MAC chain written by `mr-saas serve` and CLI processes
// interleaved verifies; an edited record, a recomputed chain and a truncated tail are named
// by `mr-saas audit verify`; a failed append does not stop later ones.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { saasCli, saasServe } from "./helpers/saas_serve.ts";
import { enrolHttp } from "./helpers/enrol_http.ts";
import {
  addAccount,
  audit,
  initOperator,
  issueToken,
  operatorConfigLines,
  verifyAudit,
} from "../provisioner/mod.ts";
import { openRecords } from "../provisioner/records.ts";

Deno.test("audit - serve and CLI commands interleave into one chain; edits, recomputed chains and truncation are named", async () => {
  const home = await Deno.makeTempDir({ prefix: "mr-audit-home-" });
  try {
    await initOperator(home);
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    await addAccount(home, "acme", { server: srv.url });
    assertEquals((await Deno.stat(join(home, "keys", "audit.key"))).mode! & 0o777, 0o600);
    const { token } = await issueToken(home, {
      server: srv.url,
      customer: "acme",
      site: "s1",
      provisioner: "http://127.0.0.1:1",
      ttlMs: 3600_000,
      maxNodes: 50,
    });
    {
      await using serve = await saasServe(home, srv.url);
      // enrolments in the serve process while token issue runs in three other processes
      const issuing = Promise.all(
        [1, 2, 3].map((i) =>
          saasCli(home, srv.url, [
            "token",
            "issue",
            "--customer",
            "acme",
            "--site",
            `s${i}`,
            "--provisioner",
            "https://prov.example.com",
          ])
        ),
      );
      const enrols = await Promise.all(
        Array.from({ length: 12 }, (_, i) => enrolHttp(serve.url, token, `n${i}`)),
      );
      for (const e of enrols) assertEquals(e.status, 200, JSON.stringify(e.body));
      for (const r of await issuing) assertEquals(r.code, 0, r.stderr);
      assertEquals(await serve.stop(), 0, `SIGTERM ends serve cleanly: ${serve.stderr()}`);
    }
    const ok = await saasCli(home, srv.url, ["audit", "verify", "--json"]);
    assertEquals(ok.code, 0, ok.stderr + ok.stdout);
    const v = JSON.parse(ok.stdout);
    assertEquals(v.ok, true);
    assert(v.records >= 1 + 1 + 1 + 12 + 3, `records: ${v.records}`);
    assertEquals(v.anchor, v.head, "the anchored head is the log's last record");
    const log = join(home, "audit.log");
    const original = await Deno.readTextFile(log);
    const lines = original.trim().split("\n");

    // an edited record
    const edited = [...lines];
    edited[4] = edited[4]!.replace(/"site":"s1"/, '"site":"evil"');
    assert(edited[4] !== lines[4]);
    await Deno.writeTextFile(log, edited.join("\n") + "\n");
    const e = await saasCli(home, srv.url, ["audit", "verify"]);
    assertEquals(e.code, 1);
    assertMatch(e.stderr, /line 5: record edited/);

    // the edit with the chain recomputed from there on (without the key: plain SHA-256)
    const recomputed = [...lines];
    let prev = JSON.parse(lines[3]!).hash;
    for (let i = 4; i < recomputed.length; i++) {
      const { hash: _h, ...body } = JSON.parse(recomputed[i]!);
      if (i === 4) body.site = "evil";
      body.prev = prev;
      prev = createHash("sha256").update(JSON.stringify(body)).digest("hex");
      recomputed[i] = JSON.stringify({ ...body, hash: prev });
    }
    await Deno.writeTextFile(log, recomputed.join("\n") + "\n");
    const rc = await saasCli(home, srv.url, ["audit", "verify", "--json"]);
    assertEquals(rc.code, 1);
    assertEquals(JSON.parse(rc.stdout).badLine, 5);

    // a removed record in the middle
    await Deno.writeTextFile(log, [...lines.slice(0, 6), ...lines.slice(7)].join("\n") + "\n");
    const rm = await saasCli(home, srv.url, ["audit", "verify"]);
    assertEquals(rm.code, 1);
    assertMatch(rm.stderr, /line 7: sequence/);

    // a truncated tail: the chain itself is fine, the anchor in NATS is not
    await Deno.writeTextFile(log, lines.slice(0, -2).join("\n") + "\n");
    const tr = await saasCli(home, srv.url, ["audit", "verify", "--json"]);
    assertEquals(tr.code, 1, tr.stdout);
    assertMatch(JSON.parse(tr.stdout).reason, /truncated/);
    const fileOnly = await saasCli(home, srv.url, ["audit", "verify", "--no-anchor"]);
    assertEquals(fileOnly.code, 0, "without the anchor a clean truncation is not visible");

    // restored: verifies again, and appends continue the chain
    await Deno.writeTextFile(log, original);
    await using records = await openRecords(home, srv.url);
    // an append that fails (here: the log is a directory for a moment) fails only itself
    await Deno.rename(log, `${log}.away`);
    await Deno.mkdir(log);
    let failed = false;
    await audit(home, { event: "test.fail" }).catch(() => failed = true);
    assert(failed, "the append failed");
    await Deno.remove(log);
    await Deno.rename(`${log}.away`, log);
    // a head that cannot be published does not fail the append
    const closed = await openRecords(home, srv.url);
    await closed.close();
    const anchorErrors: unknown[] = [];
    await audit(home, { event: "test.unanchored" }, {
      anchor: closed,
      onAnchorError: (e) => anchorErrors.push(e),
    });
    assertEquals(anchorErrors.length, 1);
    await audit(home, { event: "test.after" }, { anchor: records });
    const after = await verifyAudit(home, { records });
    assertEquals(after.badLine, 0, after.reason);
    assertEquals(after.records, lines.length + 2);
    // a writer killed mid-record: the next append starts a new line and verify names the stub
    await Deno.writeTextFile(log, '{"seq":999,"time":"2026', { append: true });
    await audit(home, { event: "test.after-crash" }, { anchor: records });
    const crash = await verifyAudit(home, { records });
    assertEquals([crash.badLine, crash.reason], [lines.length + 3, "not JSON"]);
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
});
