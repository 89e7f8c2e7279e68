// Provisioning and multi-tenant security against nats-server in operator mode (full
// resolver): enrol → run → events in the right account; the node's creds reach only its
// own subjects; refused tokens leave nothing on disk; revocation; audit chain.
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { provisionCli } from "./helpers/provision.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import {
  addAccount,
  ensureStreams,
  findNode,
  initOperator,
  issueToken,
  operatorConfigLines,
  revokeUser,
  serveProvisioner,
  verifyAudit,
} from "../provisioner/mod.ts";

// The server resets connections it drops (revoked credentials); the Node-compat socket
// can surface that reset as an uncaught error after the client already closed.
globalThis.addEventListener("error", (e) => {
  if (String((e as ErrorEvent).error?.message ?? e.message).includes("ECONNRESET")) {
    e.preventDefault();
  }
});

async function entries(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch { /* absent */ }
  return out;
}

Deno.test("provisioning - enrol, run, tenant isolation, token refusals, revocation, audit", async () => {
  const home = await Deno.makeTempDir({ prefix: "mr-home-" });
  const work = await Deno.makeTempDir({ prefix: "mr-prov-" });
  try {
    await initOperator(home, { natsPort: 4222 });
    for (const f of ["operator.nk", "system.nk", "provisioner.nk"]) {
      assertEquals((await Deno.stat(join(home, "keys", f))).mode! & 0o777, 0o600);
    }
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    const acme = await addAccount(home, "acme", { server: srv.url });
    const globex = await addAccount(home, "globex", { server: srv.url });
    const admin = await connect({
      servers: srv.url,
      authenticator: credsAuthenticator(await Deno.readFile(acme.adminCreds)),
    });
    const other = await connect({
      servers: srv.url,
      authenticator: credsAuthenticator(await Deno.readFile(globex.adminCreds)),
    });
    await ensureStreams(admin);
    await ensureStreams(other);

    const prov = await serveProvisioner({ home, servers: [srv.url] });
    const url = `http://127.0.0.1:${prov.addr.port}`;
    try {
      const { token } = await issueToken(home, {
        server: srv.url,
        customer: "acme",
        site: "site1",
        provisioner: url,
        ttlMs: 3600_000,
      });
      const tokenFile = join(work, "token.jwt");
      await Deno.writeTextFile(tokenFile, token);
      const stateDir = join(work, "n1");
      const p = await provisionCli(tokenFile, stateDir, "n1");
      assertEquals(p.code, 0, p.stderr);
      for (const f of ["config.json", "identity/node.nk", "identity/node.creds"]) {
        assertEquals((await Deno.stat(join(stateDir, f))).mode! & 0o777, 0o600, f);
      }
      const seed = (await Deno.readTextFile(join(stateDir, "identity/node.nk"))).trim();

      // an over-used token is refused and leaves nothing behind
      const again = await provisionCli(tokenFile, join(work, "n2"), "n2");
      assertEquals(again.code, 1);
      assertMatch(again.stderr, /already used/);
      assertEquals(await entries(join(work, "n2")), []);
      // expired and tampered tokens too
      const expired = await issueToken(home, {
        server: srv.url,
        customer: "acme",
        site: "site1",
        provisioner: url,
        ttlMs: -60_000,
      });
      await Deno.writeTextFile(join(work, "expired.jwt"), expired.token);
      const e = await provisionCli(join(work, "expired.jwt"), join(work, "n3"), "n3");
      assertEquals(e.code, 1);
      assertMatch(e.stderr, /expired/);
      const [h, payload, sig] = token.split(".");
      const forged = JSON.parse(atob(payload!.replace(/-/g, "+").replace(/_/g, "/")));
      forged.nats.max_nodes = 100;
      const forgedPayload = btoa(JSON.stringify(forged)).replace(/\+/g, "-").replace(/\//g, "_")
        .replace(/=+$/, "");
      await Deno.writeTextFile(join(work, "tampered.jwt"), `${h}.${forgedPayload}.${sig}`);
      const t = await provisionCli(join(work, "tampered.jwt"), join(work, "n4"), "n4");
      assertEquals(t.code, 1);
      assertMatch(t.stderr, /signature/);
      assertEquals(await entries(join(work, "n3")), []);
      assertEquals(await entries(join(work, "n4")), []);

      // enrol → run → events arrive in the customer's account only
      const node = await startNode({
        natsUrl: srv.url,
        stateDir,
        configFile: join(stateDir, "config.json"),
      });
      const jsm = await jetstreamManager(admin);
      await waitFor(
        async () => (await jsm.streams.info("MR_EVENTS")).state.messages > 0,
        20_000,
        "events in acme",
      );
      const first = await jsm.streams.getMessage("MR_EVENTS", { seq: 1 });
      assertEquals(first!.subject, "mr.site1.n1.ev.lifecycle");
      assertEquals(
        (await (await jetstreamManager(other)).streams.info("MR_EVENTS")).state.messages,
        0,
        "nothing in globex",
      );

      // the node's own credentials: only its own subjects
      const nc: NatsConnection = await connect({
        servers: srv.url,
        authenticator: credsAuthenticator(
          await Deno.readFile(join(stateDir, "identity/node.creds")),
        ),
        inboxPrefix: "_INBOX.site1.n1",
      });
      const js = jetstream(nc);
      const ok = await js.publish("mr.site1.n1.ev.test", "{}", { msgID: "own-1" });
      assert(ok.seq > 0, "publishes its own events");
      await assertRejects(() => js.publish("mr.site1.n2.ev.test", "{}", { timeout: 1500 }));
      const errors: string[] = [];
      (async () => {
        for await (const s of nc.status()) if (s.type === "error") errors.push(String(s.error));
      })();
      const sub = nc.subscribe("mr.site1.n2.cmd.>");
      const subErr = await (async () => {
        try {
          for await (const _ of sub) break;
        } catch (err) {
          return String(err);
        }
        return "";
      })();
      assertMatch(subErr + errors.join(), /[Pp]ermission/);
      const njsm = await jetstreamManager(nc);
      await assertRejects(() => njsm.streams.purge("MR_EVENTS"));
      await assertRejects(() => njsm.streams.delete("MR_EVENTS"));
      // …nor read streams: not even its own account's event history
      await assertRejects(() => njsm.streams.getMessage("MR_EVENTS", { seq: 1 }));
      // …and another customer's data is out of reach even for the very same site/node
      // names: globex holds desired state and a shared value for site1.n1, acme's node
      // reads its own account's buckets only
      const gkv = await new Kvm(other).open("MR_DESIRED");
      await gkv.put("node.site1.n1", '{"from":"globex"}');
      await new Kvm(admin).create("MR_SHARED"); // the vendor's shared bucket, in each account
      const gshared = await new Kvm(other).create("MR_SHARED");
      await gshared.put("secret", "globex-only");
      await jetstream(other).publish("mr.site1.n1.ev.lifecycle", '{"from":"globex"}');
      // a node reads its own keys with per-key direct gets (the body-only MSG.GET is denied)
      const mine = await new Kvm(nc).open("MR_DESIRED", { allow_direct: true });
      assertEquals(await mine.get("node.site1.n1"), null, "globex's desired state is invisible");
      assertEquals(
        await (await new Kvm(nc).open("MR_SHARED")).get("secret"),
        null,
        "globex's shared KV is invisible",
      );
      const gsub = nc.subscribe("mr.site1.n1.cmd.>");
      const gseen: string[] = [];
      (async () => {
        for await (const m of gsub) gseen.push(m.subject);
      })().catch(() => {});
      await other.request("mr.site1.n1.cmd.ping", "{}", { timeout: 300 }).catch(() => {});
      assertEquals(gseen, [], "a globex command for site1.n1 never reaches acme's node");
      await nc.close();

      // revocation: the running node is dropped and refused
      const userKey =
        (await Deno.readTextFile(join(stateDir, "identity/node.creds"))).match(/^(U[A-Z2-7]{55})$/m)
          ?.[1] ??
          JSON.parse(
            atob(
              (await Deno.readTextFile(join(stateDir, "identity/node.creds"))).split("\n")[1]!
                .split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/"),
            ),
          ).sub;
      await new Promise((r) => setTimeout(r, 1100)); // revocations cover JWTs issued before the revocation second
      await revokeUser(home, "acme", userKey, { server: srv.url });
      await waitFor(
        async () => {
          const hh = await node.health();
          return hh && !(hh.nats as { connected: boolean }).connected;
        },
        60_000,
        "revoked node disconnected",
      ).catch(async (err) => {
        // keep the evidence: what the node saw and what it last reported
        console.error(node.logs().slice(-40).join("\n"), JSON.stringify(await node.health()));
        throw err;
      });
      await assertRejects(() =>
        Deno.readFile(join(stateDir, "identity/node.creds")).then((c) =>
          connect({ servers: srv.url, authenticator: credsAuthenticator(c), reconnect: false })
        )
      );
      await node.stop();
      // no secret in the node's logs
      const logs = node.logs().join("\n");
      assert(!logs.includes(seed), "the seed never appears in logs");
      assert(!logs.includes("-----BEGIN"), "no creds content in logs");

      // the revoked node enrols again only with a new token: a fresh key, same state dir
      const renew = await issueToken(home, {
        server: srv.url,
        customer: "acme",
        site: "site1",
        provisioner: url,
        ttlMs: 3600_000,
      });
      await Deno.writeTextFile(join(work, "new.jwt"), renew.token);
      const re = await provisionCli(join(work, "new.jwt"), stateDir, "n1");
      assertEquals(re.code, 0, re.stderr);
      const seed2 = (await Deno.readTextFile(join(stateDir, "identity/node.nk"))).trim();
      assert(seed2 !== seed, "a new key");
      const found = await findNode(home, "site1", "n1", undefined, { server: srv.url });
      assertEquals(found?.customer, "acme");
      assertEquals(found?.users.length, 2, "both keys of site1.n1 are on record");
      const before = (await jsm.streams.info("MR_EVENTS")).state.messages;
      const node2 = await startNode({
        natsUrl: srv.url,
        stateDir,
        configFile: join(stateDir, "config.json"),
      });
      await waitFor(
        async () => (await jsm.streams.info("MR_EVENTS")).state.messages > before,
        20_000,
        "events from the re-enrolled node",
      );
      await node2.stop();

      // the audit chain verifies, and an edited record is found
      const v = await verifyAudit(home);
      assertEquals(v.badLine, 0);
      assert(v.records >= 6);
      const lines = (await Deno.readTextFile(join(home, "audit.log"))).split("\n");
      lines[2] = lines[2]!.replace(/"customer":"acme"/, '"customer":"evil"').replace(
        /"event":"[a-z.]+"/,
        '"event":"edited"',
      );
      await Deno.writeTextFile(join(home, "audit.log"), lines.join("\n"));
      const bad = await verifyAudit(home);
      assertEquals(bad.badLine, 3);
    } finally {
      await prov.shutdown();
      await admin.close();
      await other.close();
    }
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});
