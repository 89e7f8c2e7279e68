// The provisioner against a hostile client, with a real operator-mode nats-server and the
// real service: forged, expired, unsigned and other-account JWTs at renew, replayed proofs,
// revoked nodes, another node's identity, oversized/malformed bodies, floods, bad and
// revoked tokens, over-used tokens; and the node's side: plain http to a non-loopback
// provisioner and unsigned or misdirected enrolment answers. Every attempt is refused with
// its status and code, and a good request still works afterwards.
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { createAccount, createUser, fromSeed } from "@nats-io/nkeys";
import { encodeGeneric } from "@nats-io/jwt";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { b64url, enrolHttp, getNonce, post, renewHttp } from "./helpers/enrol_http.ts";
import {
  addAccount,
  initOperator,
  issueToken,
  operatorConfigLines,
  revokeAccount,
  revokeToken,
  revokeUser,
  serveProvisioner,
} from "../provisioner/mod.ts";
import { encodeUserJwt, nkeySigner } from "../src/util/ed25519.ts";
import { provision, ProvisionError } from "../src/provision/mod.ts";
import { parseCredsText } from "../src/provision/renewal.ts";

const enc = new TextEncoder();

/** A user JWT signed by `signerSeed` (an account seed), like the provisioner mints. */
async function userJwt(o: {
  signerSeed: string;
  issuerAccount: string;
  name: string;
  userKey: string;
  exp: number;
}) {
  const kp = fromSeed(enc.encode(o.signerSeed));
  return await encodeUserJwt({
    name: o.name,
    userKey: o.userKey,
    issuerAccount: o.issuerAccount,
    signerKey: kp.getPublicKey(),
    sign: await nkeySigner(o.signerSeed),
    permissions: { pub: { allow: [">"] }, sub: { allow: [">"] } },
    exp: o.exp,
  });
}

Deno.test("hostile provisioner - every attack is refused with its code and the service keeps serving", async () => {
  const home = await Deno.makeTempDir({ prefix: "mr-hostile-home-" });
  const work = await Deno.makeTempDir({ prefix: "mr-hostile-" });
  try {
    await initOperator(home);
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    const acme = await addAccount(home, "acme", { server: srv.url });
    const globex = await addAccount(home, "globex", { server: srv.url });
    await addAccount(home, "initech", { server: srv.url });
    const acmeSigner = (await Deno.readTextFile(join(home, "accounts/acme/signer.nk"))).trim();
    const globexSigner = (await Deno.readTextFile(join(home, "accounts/globex/signer.nk")))
      .trim();
    const prov = await serveProvisioner({ home, servers: [srv.url], auditWindowMs: 3_600_000 });
    const url = `http://127.0.0.1:${prov.addr.port}`;
    const token = async (
      customer: string,
      maxNodes = 10,
      extra: Record<string, unknown> = {},
    ) => (await issueToken(home, {
      server: srv.url,
      customer,
      site: "s1",
      provisioner: url,
      ttlMs: 3600_000,
      maxNodes,
      ...extra,
    }));
    const seen: string[] = [];
    const refused = (
      what: string,
      a: { status: number; body: { error?: { code: string; message: string } } },
      status: number,
      code: string,
      message?: RegExp,
    ) => {
      assertEquals(
        [a.status, a.body?.error?.code],
        [status, code],
        `${what}: ${JSON.stringify(a.body)}`,
      );
      if (message) assertMatch(a.body.error!.message, message, what);
      seen.push(what);
    };
    try {
      const t = await token("acme");
      const a = await enrolHttp(url, t.token, "a");
      assertEquals(a.status, 200, JSON.stringify(a.body));
      const b = await enrolHttp(url, t.token, "b");
      assertEquals(b.status, 200);
      const gt = await token("globex");
      const g = await enrolHttp(url, gt.token, "a"); // globex's own s1.a
      assertEquals(g.status, 200);
      const acmeAccount = acme.account;
      const hour = Math.floor(Date.now() / 1000) + 3600;

      // --- renew ---
      const intruder = createUser();
      const rogue = createAccount();
      refused(
        "renew: JWT forged with a key of its own for *.* in acme",
        await renewHttp(
          url,
          await userJwt({
            signerSeed: new TextDecoder().decode(rogue.getSeed()),
            issuerAccount: acmeAccount,
            name: "*.*",
            userKey: intruder.getPublicKey(),
            exp: hour,
          }),
          intruder,
        ),
        401,
        "untrusted_jwt",
      );
      const [h0, p0] = a.body.user_jwt.split(".");
      const claims = JSON.parse(atob(p0.replace(/-/g, "+").replace(/_/g, "/")));
      const forgedPayload = b64url(enc.encode(JSON.stringify({
        ...claims,
        name: "*.*",
        sub: intruder.getPublicKey(),
      })));
      refused(
        "renew: a real JWT's signature on a rewritten payload",
        await renewHttp(url, `${h0}.${forgedPayload}.${a.body.user_jwt.split(".")[2]}`, intruder),
        401,
        "bad_signature",
      );
      refused(
        "renew: unsigned JWT (alg none)",
        await renewHttp(
          url,
          `${b64url(enc.encode('{"typ":"JWT","alg":"none"}'))}.${forgedPayload}.`,
          intruder,
        ),
        401,
        "bad_signature",
      );
      refused(
        "renew: JWT with an empty signature",
        await renewHttp(url, `${h0}.${forgedPayload}.`, intruder),
        401,
        "bad_signature",
      );
      refused(
        "renew: expired JWT of a real node",
        await renewHttp(
          url,
          await userJwt({
            signerSeed: acmeSigner,
            issuerAccount: acmeAccount,
            name: "s1.a",
            userKey: a.kp.getPublicKey(),
            exp: Math.floor(Date.now() / 1000) - 10,
          }),
          a.kp,
        ),
        401,
        "expired",
      );
      refused(
        "renew: globex's signing key naming acme's account",
        await renewHttp(
          url,
          await userJwt({
            signerSeed: globexSigner,
            issuerAccount: acmeAccount,
            name: "s1.a",
            userKey: g.kp.getPublicKey(),
            exp: hour,
          }),
          g.kp,
        ),
        401,
        "untrusted_jwt",
      );
      refused(
        "renew: JWT of an account this vendor never made",
        await renewHttp(
          url,
          await userJwt({
            signerSeed: new TextDecoder().decode(rogue.getSeed()),
            issuerAccount: rogue.getPublicKey(),
            name: "s1.a",
            userKey: intruder.getPublicKey(),
            exp: hour,
          }),
          intruder,
        ),
        401,
        "unknown_account",
      );
      refused(
        "renew: acme's valid admin user JWT (a user that is no node)",
        await (async () => {
          const { jwt, seed } = parseCredsText(await Deno.readTextFile(acme.adminCreds));
          return await renewHttp(url, jwt, fromSeed(enc.encode(seed)));
        })(),
        401,
        "untrusted_jwt",
        /no expiry/,
      );
      refused(
        "renew: a well-signed JWT for a name never enrolled",
        await renewHttp(
          url,
          await userJwt({
            signerSeed: acmeSigner,
            issuerAccount: acmeAccount,
            name: "s1.ghost",
            userKey: intruder.getPublicKey(),
            exp: hour,
          }),
          intruder,
        ),
        401,
        "unknown_node",
      );
      refused(
        "renew: a well-signed JWT naming a real node with a key not on its record",
        await renewHttp(
          url,
          await userJwt({
            signerSeed: acmeSigner,
            issuerAccount: acmeAccount,
            name: "s1.a",
            userKey: intruder.getPublicKey(),
            exp: hour,
          }),
          intruder,
        ),
        401,
        "unknown_node",
      );
      refused(
        "renew: as another node (b's JWT, a's key)",
        await renewHttp(url, b.body.user_jwt, a.kp),
        401,
        "bad_proof",
      );
      const good = await renewHttp(url, a.body.user_jwt, a.kp);
      assertEquals(good.status, 200, JSON.stringify(good.body));
      refused(
        "renew: replayed proof of possession (same nonce and signature)",
        await post(url, "/v1/renew", {
          user_jwt: a.body.user_jwt,
          nonce: good.nonce,
          signature: good.signature,
        }),
        401,
        "bad_nonce",
      );
      refused(
        "renew: a nonce this provisioner never issued",
        await renewHttp(
          url,
          a.body.user_jwt,
          a.kp,
          `${"A".repeat(24)}.${Date.now() + 60_000}.AAAA`,
        ),
        401,
        "bad_nonce",
      );
      await new Promise((r) => setTimeout(r, 1100));
      await revokeUser(home, "acme", b.kp.getPublicKey(), { server: srv.url });
      refused(
        "renew: a revoked node",
        await renewHttp(url, b.body.user_jwt, b.kp),
        401,
        "revoked",
      );
      refused(
        "renew: malformed JWT",
        await renewHttp(url, "not.a.jwt", a.kp),
        400,
        "malformed_jwt",
      );

      // --- enrol ---
      refused(
        "enrol: 100 KiB body (declared)",
        await post(url, "/v1/enroll", JSON.stringify({ token: "x".repeat(100 * 1024) })),
        413,
        "too_large",
      );
      refused(
        "enrol: 1 MiB body streamed without a length",
        await (async () => {
          const chunk = enc.encode("x".repeat(16 * 1024));
          let n = 0;
          const body = new ReadableStream<Uint8Array>({
            pull(c) {
              if (n++ < 64) c.enqueue(chunk);
              else c.close();
            },
          });
          const r = await fetch(`${url}/v1/enroll`, { method: "POST", body });
          return { status: r.status, body: await r.json() };
        })(),
        413,
        "too_large",
      );
      refused(
        "enrol: malformed JSON",
        await post(url, "/v1/enroll", "{not json"),
        400,
        "bad_request",
        /not JSON/,
      );
      refused(
        "enrol: wrong type names its path",
        await post(url, "/v1/enroll", {
          token: t.token,
          public_key: intruder.getPublicKey(),
          nonce: "n",
          signature: "s",
          node: 5,
        }),
        400,
        "bad_request",
        /^node: /,
      );
      refused(
        "enrol: a public key that is no user key",
        await post(url, "/v1/enroll", {
          token: t.token,
          public_key: rogue.getPublicKey(),
          nonce: "n",
          signature: "s",
          node: "x",
        }),
        400,
        "bad_request",
        /^public_key: /,
      );
      refused(
        "enrol: node name that is no identifier",
        await enrolHttp(url, t.token, "../../etc"),
        400,
        "bad_request",
        /^node: /,
      );
      const [th, tp, ts] = t.token.split(".");
      const tc = JSON.parse(atob(tp!.replace(/-/g, "+").replace(/_/g, "/")));
      tc.nats.max_nodes = 1000;
      refused(
        "enrol: token with a tampered payload",
        await enrolHttp(url, `${th}.${b64url(enc.encode(JSON.stringify(tc)))}.${ts}`, "c"),
        401,
        "bad_signature",
      );
      refused(
        "enrol: token signed by another provisioner key",
        await enrolHttp(
          url,
          await encodeGeneric("acme/s1", createAccount(), "mr-provisioning", tc.nats, {
            exp: hour,
          }),
          "c",
        ),
        401,
        "untrusted_token",
      );
      const expired = await issueToken(home, {
        server: srv.url,
        customer: "acme",
        site: "s1",
        provisioner: url,
        ttlMs: -60_000,
      });
      refused("enrol: expired token", await enrolHttp(url, expired.token, "c"), 401, "expired");
      const revokedToken = await token("acme");
      await revokeToken(home, revokedToken.jti, { server: srv.url });
      refused(
        "enrol: revoked token",
        await enrolHttp(url, revokedToken.token, "c"),
        401,
        "revoked",
      );
      const it = await token("initech");
      await revokeAccount(home, "initech", { server: srv.url });
      refused(
        "enrol: token of a revoked account",
        await enrolHttp(url, it.token, "c"),
        403,
        "account_revoked",
      );
      const once = await token("acme", 1);
      assertEquals((await enrolHttp(url, once.token, "once")).status, 200);
      refused(
        "enrol: token reused past max_nodes",
        await enrolHttp(url, once.token, "twice"),
        403,
        "overused",
      );
      refused(
        "enrol: another node's name under a new key",
        await enrolHttp(url, t.token, "a"),
        409,
        "name_taken",
      );
      refused(
        "enrol: proof signed by another key",
        await (async () => {
          const nonce = await getNonce(url);
          return await post(url, "/v1/enroll", {
            token: t.token,
            public_key: createUser().getPublicKey(),
            nonce,
            signature: b64url(intruder.sign(enc.encode(nonce))),
            node: "c",
          });
        })(),
        401,
        "bad_proof",
      );
      refused(
        "an endpoint that does not exist",
        await post(url, "/v1/admin", {}),
        404,
        "not_found",
      );

      // --- the node's side ---
      const insecure = await token("acme", 1, {
        provisioner: "http://mr-provisioner.invalid:8470",
      });
      const e1 = await assertRejects(
        () => provision({ token: insecure.token, stateDir: join(work, "n-http"), node: "h" }),
        ProvisionError,
      );
      assertEquals((e1 as ProvisionError).code, "insecure_provisioner");
      seen.push("node: plain http to a non-loopback provisioner");
      const allowed = await token("acme", 1, {
        provisioner: "http://mr-provisioner.invalid:8470",
        allowHttp: true,
      });
      const e2 = await assertRejects(
        () => provision({ token: allowed.token, stateDir: join(work, "n-http2"), node: "h" }),
        ProvisionError,
      );
      assertEquals(
        (e2 as ProvisionError).code,
        "unreachable",
        "--allow-http lets the node try (the host does not exist)",
      );
      // a provisioner (or a man in the middle) answering with an unsigned config, or with a
      // real signed answer meant for another node
      const stolen = await enrolHttp(url, (await token("acme")).token, "stolen");
      for (
        const [what, answer] of [
          ["node: unsigned enrolment answer", { user_jwt: "x", config: { site: "s1" } }],
          ["node: a signed answer for another node's key and nonce", stolen.body],
        ] as const
      ) {
        const fake = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen() {} },
          (req) =>
            new URL(req.url).pathname === "/v1/nonce"
              ? Response.json({ nonce: "n" })
              : Response.json(answer),
        );
        try {
          const ft = await token("acme", 1, { provisioner: `http://127.0.0.1:${fake.addr.port}` });
          const e = await assertRejects(
            () => provision({ token: ft.token, stateDir: join(work, `fake-${seen.length}`) }),
            ProvisionError,
          );
          assertEquals((e as ProvisionError).code, "untrusted_provisioner", what);
          seen.push(what);
        } finally {
          await fake.shutdown();
        }
      }
      for await (const d of Deno.readDir(work)) {
        throw new Error(`a refused enrolment left ${d.name} behind`);
      }

      // still serving: a good enrolment and a good renewal
      const ok = await enrolHttp(url, t.token, "after");
      assertEquals(ok.status, 200, JSON.stringify(ok.body));
      assertEquals((await renewHttp(url, ok.body.user_jwt, ok.kp)).status, 200);
      // the node verifies a real answer
      const real = await provision({
        token: (await token("acme")).token,
        stateDir: join(work, "real"),
        node: "real",
      });
      assert(real.endsWith("config.json"));
    } finally {
      await prov.shutdown();
    }

    // --- flood: its own provisioner with a small limit ---
    const frozen = Date.now();
    const small = await serveProvisioner({
      home,
      servers: [srv.url],
      ratePerMinute: 20,
      auditWindowMs: 3_600_000,
      // a stopped clock: the bucket does not refill while a loaded machine is slow
      now: () => frozen,
    });
    const before = (await Deno.readTextFile(join(home, "audit.log"))).trim().split("\n").length;
    try {
      const surl = `http://127.0.0.1:${small.addr.port}`;
      const statuses = await Promise.all(
        Array.from({ length: 100 }, () =>
          fetch(`${surl}/v1/nonce`).then(async (r) => {
            await r.body?.cancel();
            return r.status;
          })),
      );
      assertEquals(statuses.filter((s) => s === 200).length, 20, statuses.join(","));
      assertEquals(statuses.filter((s) => s === 429).length, 80);
      seen.push("enrol flood: 429");
    } finally {
      await small.shutdown();
    }
    // the 80 refusals are one audit record with their count
    const tail = (await Deno.readTextFile(join(home, "audit.log"))).trim().split("\n").slice(
      before,
    ).map((l) => JSON.parse(l));
    const summaries = tail.filter((r) => r.event === "deny.summary");
    assertEquals(summaries.length, 1, JSON.stringify(tail));
    assertEquals([summaries[0].count, summaries[0].codes.rate_limited], [80, 80]);
    assertEquals(tail.length, 1, "no record per refused request");
    assert(seen.length >= 30, `${seen.length} attacks: ${seen.join("; ")}`);
    console.log(`${seen.length} distinct attacks refused`);
    assertEquals(new Set(seen).size, seen.length, "distinct attacks");
    void globex;
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});
