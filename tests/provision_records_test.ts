// Token and node records in NATS KV (vendor account), shared by provisioners: a restart
// keeps max_nodes and revocations exactly; two provisioners never over-enrol; a name is
// refused under another key until revoked; node revoke covers every key.
import { assertEquals, assertMatch, assertRejects } from "@std/assert";
import { join } from "node:path";
import { provision, type ProvisionError } from "../src/provision/mod.ts";
import { saasCli } from "./helpers/saas_serve.ts";
import { startNatsServer } from "./helpers/nats_server.ts";
import { createUser } from "@nats-io/nkeys";
import { b64url, enrolHttp, getNonce, post, renewHttp } from "./helpers/enrol_http.ts";
import {
  addAccount,
  findNode,
  initOperator,
  issueToken,
  listTokens,
  operatorConfigLines,
  revokeUser,
  serveProvisioner,
} from "../provisioner/mod.ts";

async function setup() {
  const home = await Deno.makeTempDir({ prefix: "mr-rec-home-" });
  await initOperator(home);
  const srv = await startNatsServer({ config: await operatorConfigLines(home) });
  await addAccount(home, "acme", { server: srv.url });
  return {
    home,
    srv,
    async [Symbol.asyncDispose]() {
      await srv[Symbol.asyncDispose]();
      await Deno.remove(home, { recursive: true }).catch(() => {});
    },
  };
}

Deno.test("provision records - a provisioner restart keeps max_nodes, names and revocation exactly", async () => {
  await using ctx = await setup();
  const { home, srv } = ctx;
  const start = () => serveProvisioner({ home, servers: [srv.url] });
  let prov = await start();
  const url = () => `http://127.0.0.1:${prov.addr.port}`;
  const { token, jti } = await issueToken(home, {
    server: srv.url,
    customer: "acme",
    site: "s1",
    provisioner: "http://127.0.0.1:1",
    ttlMs: 3600_000,
    maxNodes: 3,
  });
  try {
    const a = await enrolHttp(url(), token, "a");
    assertEquals(a.status, 200, JSON.stringify(a.body));
    // the same name again with the same key counts (every enrolment is a use)
    const a2 = await enrolHttp(url(), token, "a", a.kp);
    assertEquals(a2.status, 200, JSON.stringify(a2.body));
    // the name under another key: refused, and no use is spent
    const steal = await enrolHttp(url(), token, "a");
    assertEquals([steal.status, steal.body.error.code], [409, "name_taken"]);

    await prov.shutdown();
    prov = await start();
    assertEquals((await listTokens(home, { server: srv.url })).find((t) => t.jti === jti)?.uses, 2);
    const stealAgain = await enrolHttp(url(), token, "a");
    assertEquals(stealAgain.status, 409, "the name is still taken after a restart");
    const b = await enrolHttp(url(), token, "b");
    assertEquals(b.status, 200, JSON.stringify(b.body));
    const c = await enrolHttp(url(), token, "c");
    assertEquals([c.status, c.body.error.code], [403, "overused"], "max_nodes 3 holds");

    // revoke a: every key it had; then a new token may take the name, and a restart
    // keeps the revocation (the old key cannot renew, the new one is current)
    const found = await findNode(home, "s1", "a", undefined, { server: srv.url });
    assertEquals(found?.users, [a.kp.getPublicKey()]);
    await revokeUser(home, "acme", found!.users, { server: srv.url });
    await prov.shutdown();
    prov = await start();
    const t2 = await issueToken(home, {
      server: srv.url,
      customer: "acme",
      site: "s1",
      provisioner: "http://127.0.0.1:1",
      ttlMs: 3600_000,
      maxNodes: 5,
    });
    const again = await enrolHttp(url(), t2.token, "a");
    assertEquals(again.status, 200, JSON.stringify(again.body));
    const after = await findNode(home, "s1", "a", undefined, { server: srv.url });
    assertEquals(after?.users, [a.kp.getPublicKey(), again.kp.getPublicKey()]);
    assertEquals(after?.user, again.kp.getPublicKey());
    assertEquals(after?.revoked, false);
    // node revoke covers both keys
    await revokeUser(home, "acme", after!.users, { server: srv.url });
    assertEquals(
      (await findNode(home, "s1", "a", undefined, { server: srv.url }))?.revoked,
      true,
    );
  } finally {
    await prov.shutdown();
  }
});

Deno.test("provision records - two provisioners, 20 concurrent enrolments, max_nodes 5: exactly 5", async () => {
  await using ctx = await setup();
  const { home, srv } = ctx;
  const p1 = await serveProvisioner({ home, servers: [srv.url] });
  const p2 = await serveProvisioner({ home, servers: [srv.url] });
  try {
    const { token, jti } = await issueToken(home, {
      server: srv.url,
      customer: "acme",
      site: "s1",
      provisioner: "http://127.0.0.1:1",
      ttlMs: 3600_000,
      maxNodes: 5,
    });
    const urls = [p1, p2].map((p) => `http://127.0.0.1:${p.addr.port}`);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => enrolHttp(urls[i % 2]!, token, `n${i}`)),
    );
    const ok = results.filter((r) => r.status === 200);
    assertEquals(ok.length, 5, results.map((r) => r.status).join(","));
    for (const r of results) {
      if (r.status !== 200) assertEquals(r.body.error.code, "overused");
    }
    assertEquals((await listTokens(home, { server: srv.url })).find((t) => t.jti === jti)?.uses, 5);
    // a nonce from one provisioner is good at the other, once: the replay at the first fails
    const kp = createUser();
    const nonce = await getNonce(urls[0]!);
    const req = {
      token,
      public_key: kp.getPublicKey(),
      nonce,
      signature: b64url(kp.sign(new TextEncoder().encode(nonce))),
      node: "late",
    };
    const there = await post(urls[1]!, "/v1/enroll", req);
    assertEquals(there.body.error.code, "overused", "the nonce was accepted at the other one");
    const replay = await post(urls[0]!, "/v1/enroll", req);
    assertEquals([replay.status, replay.body.error.code], [401, "bad_nonce"]);
  } finally {
    await p1.shutdown();
    await p2.shutdown();
  }
});

Deno.test("provision records - token list/revoke, node revoke and account revoke through the mr-saas CLI", async () => {
  await using ctx = await setup();
  const { home, srv } = ctx;
  const prov = await serveProvisioner({ home, servers: [srv.url] });
  const url = `http://127.0.0.1:${prov.addr.port}`;
  try {
    const issued = await saasCli(home, srv.url, [
      "token",
      "issue",
      "--customer",
      "acme",
      "--site",
      "s1",
      "--provisioner",
      url,
      "--max-nodes",
      "2",
    ]);
    assertEquals(issued.code, 0, issued.stderr);
    const token = issued.stdout.trim();
    const a = await enrolHttp(url, token, "a");
    assertEquals(a.status, 200, JSON.stringify(a.body));
    const list = await saasCli(home, srv.url, ["token", "list"]);
    assertEquals(list.code, 0, list.stderr);
    const [jti, customer, site, uses] = list.stdout.trim().split("\t");
    assertEquals([customer, site, uses], ["acme", "s1", "1/2"]);
    const listJson = await saasCli(home, srv.url, ["token", "list", "--json"]);
    assertEquals(
      JSON.parse(listJson.stdout).map((t: { jti: string; uses: number }) => [t.jti, t.uses]),
      [[jti, 1]],
    );
    const nr = await saasCli(home, srv.url, ["node", "revoke", "s1.a"]);
    assertEquals(nr.code, 0, nr.stderr);
    assertEquals(JSON.parse(nr.stdout).users, [a.kp.getPublicKey()]);
    const renew = await renewHttp(url, a.body.user_jwt, a.kp);
    assertEquals([renew.status, renew.body.error.code], [401, "revoked"]);
    const tr = await saasCli(home, srv.url, ["token", "revoke", jti!]);
    assertEquals(tr.code, 0, tr.stderr);
    const b = await enrolHttp(url, token, "b");
    assertEquals([b.status, b.body.error.code], [401, "revoked"]);
    assertEquals((await saasCli(home, srv.url, ["token", "revoke", "nope"])).code, 2);
    const ar = await saasCli(home, srv.url, ["account", "revoke", "acme"]);
    assertEquals(ar.code, 0, ar.stderr);
    const t2 = await issueToken(home, {
      server: srv.url,
      customer: "acme",
      site: "s1",
      provisioner: url,
      ttlMs: 60_000,
    });
    const c = await enrolHttp(url, t2.token, "c");
    assertEquals([c.status, c.body.error.code], [403, "account_revoked"]);
    const bad = await saasCli(home, srv.url, ["serve", "--rate-limit", "lots"]);
    assertEquals(bad.code, 2);
    assertMatch(bad.stderr, /--rate-limit/);
  } finally {
    await prov.shutdown();
  }
});

Deno.test("provision records - a node whose enrolment answer was lost enrols again under the same key", async () => {
  await using ctx = await setup();
  const { home, srv } = ctx;
  const prov = await serveProvisioner({ home, servers: [srv.url] });
  // a proxy that passes everything on but loses the first enrolment's answer
  let lost = 0;
  const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const u = new URL(req.url);
    const r = await fetch(`http://127.0.0.1:${prov.addr.port}${u.pathname}`, {
      method: req.method,
      ...(req.method === "POST" ? { body: await req.text() } : {}),
    });
    const body = await r.text();
    if (u.pathname === "/v1/enroll" && lost++ === 0) {
      return new Response("gateway", { status: 502 });
    }
    return new Response(body, { status: r.status, headers: r.headers });
  });
  const stateDir = await Deno.makeTempDir({ prefix: "mr-rec-node-" });
  try {
    const { token, jti } = await issueToken(home, {
      server: srv.url,
      customer: "acme",
      site: "s1",
      provisioner: `http://127.0.0.1:${proxy.addr.port}`,
      ttlMs: 3600_000,
      maxNodes: 2,
    });
    const first = await provision({ token, stateDir, node: "n1" }).catch((e) => e);
    assertEquals((first as ProvisionError).code, "refused");
    const pending = (await Deno.readTextFile(join(stateDir, "identity/pending.nk"))).trim();
    assertEquals((await Deno.stat(join(stateDir, "identity/pending.nk"))).mode! & 0o777, 0o600);
    await provision({ token, stateDir, node: "n1" });
    assertEquals((await Deno.readTextFile(join(stateDir, "identity/node.nk"))).trim(), pending);
    await assertRejects(() => Deno.stat(join(stateDir, "identity/pending.nk")));
    const found = await findNode(home, "s1", "n1", undefined, { server: srv.url });
    assertEquals(found?.users.length, 1, "one key on record");
    assertEquals((await listTokens(home, { server: srv.url })).find((t) => t.jti === jti)?.uses, 2);
  } finally {
    await proxy.shutdown();
    await prov.shutdown();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("provision records - identical tokens issued in the same second get their own ids and records", async () => {
  // the JWT's jti hashes its claims: without a nonce two such tokens collided ("token id exists")
  await using ctx = await setup();
  const o = {
    server: ctx.srv.url,
    customer: "acme",
    site: "s1",
    provisioner: "http://127.0.0.1:1",
    ttlMs: 3600_000,
  };
  const [a, b] = await Promise.all([issueToken(ctx.home, o), issueToken(ctx.home, o)]);
  const c = await issueToken(ctx.home, o);
  assertEquals(new Set([a.jti, b.jti, c.jti]).size, 3);
  const listed = (await listTokens(ctx.home, { server: ctx.srv.url })).map((t) => t.jti);
  for (const t of [a, b, c]) assertEquals(listed.includes(t.jti), true, t.jti);
});
