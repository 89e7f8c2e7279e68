// The backend view (issue 5) against nats-server 2.9 in operator mode: one backend account
// whose MR_EVENTS_ALL stream holds every customer's events with the customer id in the
// subject; accounts added later are linked; the export needs an activation token (a rogue
// account importing it gets nothing); `account revoke` drops the customer's connections
// and refuses its enrolments.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { createAccount, createUser } from "@nats-io/nkeys";
import { encodeAccount, encodeUser, fmtCreds } from "@nats-io/jwt";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { waitFor } from "./helpers/daemon.ts";
import { provisionCli } from "./helpers/provision.ts";
import {
  addAccount,
  backendConnect,
  ensureStreams,
  initOperator,
  issueToken,
  listAccounts,
  operatorConfigLines,
  pushAccount,
  readSeed,
  revokeAccount,
  serveProvisioner,
  setupBackend,
} from "../provisioner/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

globalThis.addEventListener("error", (e) => {
  if (String((e as ErrorEvent).error?.message ?? e.message).includes("ECONNRESET")) {
    e.preventDefault();
  }
});

async function admin(home: string, customer: string, url: string): Promise<NatsConnection> {
  return await connect({
    servers: url,
    authenticator: credsAuthenticator(
      await Deno.readFile(join(home, "accounts", customer, "admin.creds")),
    ),
  });
}

Deno.test("backend view - MR_EVENTS_ALL holds every customer's events; activation required; account revoke", async () => {
  const home = await Deno.makeTempDir({ prefix: "mr-home-" });
  const work = await Deno.makeTempDir({ prefix: "mr-backend-" });
  const conns: NatsConnection[] = [];
  try {
    await initOperator(home, { natsPort: 4222 });
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    await addAccount(home, "acme", { server: srv.url });
    await addAccount(home, "globex", { server: srv.url });
    const acme = await admin(home, "acme", srv.url);
    const globex = await admin(home, "globex", srv.url);
    conns.push(acme, globex);
    await ensureStreams(acme);
    await ensureStreams(globex);

    const info = await setupBackend(home, { server: srv.url, maxAge: "7d" });
    assertEquals(info.customers, ["acme", "globex"]);
    assertEquals((await Deno.stat(info.reader_creds)).mode! & 0o777, 0o600);
    assertEquals((await Deno.stat(join(home, "backend", "account.nk"))).mode! & 0o777, 0o600);
    // idempotent, and the same through the CLI
    const cli = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "provisioner/main.ts"),
        "--home",
        home,
        "--server",
        srv.url,
        "backend",
        "init",
        "--max-age",
        "7d",
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    assertEquals(cli.code, 0, dec.decode(cli.stderr));
    const again = JSON.parse(dec.decode(cli.stdout));
    assertEquals(again.account, info.account);
    assertEquals(again.customers, ["acme", "globex"]);
    assertEquals(again.stream, "MR_EVENTS_ALL");

    const be = await backendConnect(home, srv.url);
    conns.push(be);
    const bjsm = await jetstreamManager(be);
    const si = await bjsm.streams.info("MR_EVENTS_ALL");
    assertEquals(si.config.subjects, ["cust.*.mr.*.*.ev.>"]);
    assertEquals(si.config.max_age, 7 * 86400 * 1e9);

    // the same site and node names in two customers stay apart: the customer id is in the subject
    const ack1 = await jetstream(acme).publish("mr.site1.n1.ev.lifecycle", '{"from":"acme"}');
    const ack2 = await jetstream(globex).publish("mr.site1.n1.ev.lifecycle", '{"from":"globex"}');
    assertEquals(ack1.stream, "MR_EVENTS");
    assertEquals(ack2.stream, "MR_EVENTS");
    // non-event subjects are not exported
    await jetstream(acme).publish("mr.site1.n1.facts", '{"facts":1}');
    await waitFor(
      async () => (await bjsm.streams.info("MR_EVENTS_ALL")).state.messages >= 2,
      10_000,
      "events in MR_EVENTS_ALL",
    );
    const got = new Map<string, string>();
    for (let seq = 1; seq <= 2; seq++) {
      const m = await bjsm.streams.getMessage("MR_EVENTS_ALL", { seq });
      got.set(m!.subject, dec.decode(m!.data));
    }
    assertEquals(
      Object.fromEntries(got),
      {
        "cust.acme.mr.site1.n1.ev.lifecycle": '{"from":"acme"}',
        "cust.globex.mr.site1.n1.ev.lifecycle": '{"from":"globex"}',
      },
    );

    // a customer added later is linked by `account add`
    await addAccount(home, "initech", { server: srv.url });
    const initech = await admin(home, "initech", srv.url);
    conns.push(initech);
    // (no MR_EVENTS of its own here: the server's disk reservation is spent by two
    // customers' default stream limits; the export works on the subject either way)
    initech.publish("mr.s9.n9.ev.custom", '{"from":"initech"}');
    await initech.flush();
    await waitFor(
      async () => {
        const m = await bjsm.streams.getMessage("MR_EVENTS_ALL", {
          last_by_subj: "cust.initech.mr.s9.n9.ev.custom",
        }).catch(() => null);
        return m && dec.decode(m.data) === '{"from":"initech"}';
      },
      10_000,
      "initech's event in MR_EVENTS_ALL",
    );

    // the backend cannot reach into a customer account: its publishes stay in its account
    const seen: string[] = [];
    const cmdSub = acme.subscribe("mr.>", { callback: (_e, m) => void seen.push(m.subject) });
    await acme.flush();
    be.publish("mr.site1.n1.cmd.ping", "{}");
    be.publish("cust.acme.mr.site1.n1.cmd.ping", "{}");
    await be.flush();
    // a customer cannot see the backend's subjects either
    const leak: string[] = [];
    const beSub = globex.subscribe("cust.>", { callback: (_e, m) => void leak.push(m.subject) });
    await globex.flush();
    await jetstream(acme).publish("mr.site1.n2.ev.lifecycle", "{}");
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(seen, ["mr.site1.n2.ev.lifecycle"], "acme sees only its own traffic");
    assertEquals(leak, [], "globex sees nothing of the backend or acme");
    cmdSub.unsubscribe();
    beSub.unsubscribe();

    // a rogue account importing acme's export without an activation token gets nothing
    const op = await readSeed(join(home, "keys", "operator.nk"));
    const rogue = createAccount();
    const acmeKey = (await listAccounts(home)).find((a) => a.customer === "acme")!.account;
    const rogueJwt = await encodeAccount("rogue", rogue, {
      limits: {
        conn: -1,
        subs: -1,
        data: -1,
        payload: -1,
        imports: -1,
        exports: -1,
        wildcards: true,
      },
      imports: [{
        name: "steal",
        type: "stream",
        account: acmeKey,
        subject: "mr.*.*.ev.>",
        to: "stolen",
      }],
    }, { signer: op });
    await pushAccount(home, rogueJwt, srv.url).catch(() => {});
    const ru = createUser();
    const rc = await connect({
      servers: srv.url,
      authenticator: credsAuthenticator(fmtCreds(await encodeUser("r", ru, rogue), ru)),
    });
    conns.push(rc);
    const stolen: string[] = [];
    rc.subscribe(">", { callback: (_e, m) => void stolen.push(m.subject) });
    await rc.flush();
    await jetstream(acme).publish("mr.site1.n1.ev.secret", '{"secret":true}');
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(stolen.filter((s) => s.includes("ev.")), [], "no activation, no events");

    // account revoke: the customer's connections are dropped and its enrolments refused
    const prov = await serveProvisioner({ home, servers: [srv.url] });
    try {
      const url = `http://127.0.0.1:${prov.addr.port}`;
      const { token } = await issueToken(home, {
        server: srv.url,
        customer: "initech",
        site: "s9",
        provisioner: url,
        ttlMs: 3600_000,
      });
      const closed = initech.closed();
      await new Promise((r) => setTimeout(r, 1100)); // revocations cover JWTs issued before that second
      await revokeAccount(home, "initech", { server: srv.url });
      const err = await Promise.race([
        closed.then((e) => String(e ?? "closed")),
        new Promise<string>((r) => setTimeout(() => r("still connected"), 15_000)),
      ]);
      assert(err !== "still connected", "the revoked account's connection is dropped");
      const tokenFile = join(work, "token.jwt");
      await Deno.writeTextFile(tokenFile, token);
      const o = await provisionCli(tokenFile, join(work, "n9"), "n9");
      assertEquals(o.code, 1);
      assertMatch(o.stderr, /account "initech" is revoked/);
      // other customers are untouched
      assert(!acme.isClosed());
      await jetstream(acme).publish("mr.site1.n1.ev.after", "{}");
    } finally {
      await prov.shutdown();
    }
  } finally {
    for (const c of conns) await c.close().catch(() => {});
    await Deno.remove(home, { recursive: true }).catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});
