// Credential renewal before expiry (the daemon's `renewal` module against the real
// provisioner) and the vendor webhook deciding on enrolments.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { provisionCli } from "./helpers/provision.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import {
  addAccount,
  ensureStreams,
  initOperator,
  issueToken,
  operatorConfigLines,
  revokeToken,
  serveProvisioner,
} from "../provisioner/mod.ts";
import { jwtExpiry, parseCredsText } from "../src/provision/renewal.ts";

globalThis.addEventListener("error", (e) => {
  if (String((e as ErrorEvent).error?.message ?? e.message).includes("ECONNRESET")) {
    e.preventDefault();
  }
});

Deno.test("provisioning - the webhook decides; credentials are renewed before they expire and the node stays connected", async () => {
  const home = await Deno.makeTempDir({ prefix: "mr-home-" });
  const work = await Deno.makeTempDir({ prefix: "mr-renew-" });
  const seen: string[] = [];
  const hook = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const body = await req.json() as { node: string; customer: string; site: string };
    seen.push(`${body.customer}/${body.site}/${body.node}`);
    return Response.json(
      body.node === "intruder" ? { allow: false } : {
        allow: true,
        settings: { settings: { heartbeat_interval: "1s", facts_interval: "5m" } },
      },
    );
  });
  try {
    await initOperator(home);
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    const acme = await addAccount(home, "acme", { server: srv.url });
    const admin = await connect({
      servers: srv.url,
      authenticator: credsAuthenticator(await Deno.readFile(acme.adminCreds)),
    });
    await ensureStreams(admin);
    const prov = await serveProvisioner({
      home,
      servers: [srv.url],
      credsTtlMs: 12_000,
      webhook: `http://127.0.0.1:${hook.addr.port}/decide`,
    });
    try {
      const url = `http://127.0.0.1:${prov.addr.port}`;
      const { token } = await issueToken(home, {
        server: srv.url,
        customer: "acme",
        site: "site1",
        provisioner: url,
        ttlMs: 3600_000,
        maxNodes: 3,
      });
      const tokenFile = join(work, "token.jwt");
      await Deno.writeTextFile(tokenFile, token);

      const denied = await provisionCli(tokenFile, join(work, "intruder"), "intruder");
      assertEquals(denied.code, 1);
      assertMatch(denied.stderr, /webhook denied/);
      const stateDir = join(work, "n1");
      const ok = await provisionCli(tokenFile, stateDir, "n1");
      assertEquals(ok.code, 0, ok.stderr);
      assertEquals(seen, ["acme/site1/intruder", "acme/site1/n1"]);
      const config = JSON.parse(await Deno.readTextFile(join(stateDir, "config.json")));
      assertEquals(
        config.settings.heartbeat_interval,
        "1s",
        "the webhook's settings reach the node",
      );

      // a revoked token is refused by the running provisioner and leaves nothing behind
      const spare = await issueToken(home, {
        server: srv.url,
        customer: "acme",
        site: "site1",
        provisioner: url,
        ttlMs: 3600_000,
      });
      await Deno.writeTextFile(join(work, "spare.jwt"), spare.token);
      await revokeToken(home, spare.jti, { server: srv.url });
      const revoked = await provisionCli(join(work, "spare.jwt"), join(work, "n9"), "n9");
      assertEquals(revoked.code, 1);
      assertMatch(revoked.stderr, /revoked/);
      assertEquals([...Deno.readDirSync(work)].some((e) => e.name === "n9"), false);

      const credsPath = join(stateDir, "identity/node.creds");
      const firstExp = jwtExpiry(parseCredsText(await Deno.readTextFile(credsPath)).jwt)!;
      assert(firstExp - Date.now() < 13_000);
      await using node = await startNode({
        natsUrl: srv.url,
        stateDir,
        configFile: join(stateDir, "config.json"),
      });
      // renewed before the first JWT expires
      await waitFor(
        async () => {
          const exp = jwtExpiry(parseCredsText(await Deno.readTextFile(credsPath)).jwt)!;
          return exp > firstExp;
        },
        15_000,
        "renewed credentials",
      );
      assertEquals((await Deno.stat(credsPath)).mode! & 0o777, 0o600);
      // well past the first expiry the node is still connected and reporting
      const wait = firstExp - Date.now() + 3_000;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const h = await waitFor(
        async () => {
          const d = await node.health();
          return d && (d.nats as { connected: boolean }).connected &&
              Date.parse(d.time as string) > firstExp
            ? d
            : null;
        },
        10_000,
        "connected after the first expiry",
      );
      const renewal =
        (h.modules as Record<string, { last_renewal: string | null; refused: boolean }>).renewal!;
      assert(renewal.last_renewal !== null);
      assertEquals(renewal.refused, false);
      const ping = await admin.request("mr.site1.n1.cmd.ping", "", { timeout: 5000 });
      assertEquals(ping.json<{ pong: boolean }>().pong, true);
      await node.stop();
    } finally {
      await prov.shutdown();
      await admin.close();
    }
  } finally {
    await hook.shutdown();
    await Deno.remove(home, { recursive: true }).catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});

Deno.test("provisioning - the node keeps its credentials when a renewal answer is not signed by its provisioner", async () => {
  const home = await Deno.makeTempDir({ prefix: "mr-home-" });
  const work = await Deno.makeTempDir({ prefix: "mr-renew-" });
  try {
    await initOperator(home);
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    const acme = await addAccount(home, "acme", { server: srv.url });
    const admin = await connect({
      servers: srv.url,
      authenticator: credsAuthenticator(await Deno.readFile(acme.adminCreds)),
    });
    await ensureStreams(admin);
    const prov = await serveProvisioner({ home, servers: [srv.url], credsTtlMs: 12_000 });
    // a man in the middle: passes everything on, but strips the signature of renewal
    // answers (the JWT inside is real and valid)
    let stripped = 0;
    const mitm = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const u = new URL(req.url);
      const r = await fetch(`http://127.0.0.1:${prov.addr.port}${u.pathname}`, {
        method: req.method,
        ...(req.method === "POST" ? { body: await req.text() } : {}),
      });
      const body = await r.json();
      if (u.pathname === "/v1/renew" && body.signed) {
        delete body.signed;
        stripped++;
      }
      return Response.json(body, { status: r.status });
    });
    try {
      const { token } = await issueToken(home, {
        server: srv.url,
        customer: "acme",
        site: "site1",
        provisioner: `http://127.0.0.1:${mitm.addr.port}`,
        ttlMs: 3600_000,
      });
      const tokenFile = join(work, "token.jwt");
      await Deno.writeTextFile(tokenFile, token);
      const stateDir = join(work, "n1");
      const ok = await provisionCli(tokenFile, stateDir, "n1");
      assertEquals(ok.code, 0, ok.stderr);
      const config = JSON.parse(await Deno.readTextFile(join(stateDir, "config.json")));
      assertMatch(config.provisioner.key, /^A[A-Z2-7]{55}$/, "the token's issuer is kept");
      const credsPath = join(stateDir, "identity/node.creds");
      const before = await Deno.readTextFile(credsPath);
      await using node = await startNode({
        natsUrl: srv.url,
        stateDir,
        configFile: join(stateDir, "config.json"),
      });
      const h = await waitFor(
        async () => {
          const d = await node.health();
          const r = (d?.modules as Record<string, { last_error: string | null }> | undefined)
            ?.renewal;
          return r?.last_error ? r : null;
        },
        20_000,
        "a refused renewal answer",
      );
      assertMatch(h.last_error!, /not signed/);
      assert(stripped >= 1);
      assertEquals(await Deno.readTextFile(credsPath), before, "the old creds are kept");
      await node.stop();
    } finally {
      await mitm.shutdown();
      await prov.shutdown();
      await admin.close();
    }
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});
