/**
 * Fault matrix: the provisioner is down when the node's credentials are due for renewal
 * (operator mode, node credentials from the real enrolment, 30 s lifetime).
 *
 * Promised: the node runs on with its current credentials, retrying the renewal at least
 * twice before they expire (half of what is left each time; health shows the error), stays
 * connected, and renews on the next retry once the provisioner is back before the expiry.
 * (After the expiry the provisioner refuses a renewal by design — code `expired`: the node
 * must enrol again with a new token — so the retries stop mattering then.)
 */
import { assert } from "@std/assert";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { provisionCli } from "./helpers/provision.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { lastMessage } from "./helpers/stream_read.ts";
import {
  addAccount,
  ensureStreams,
  initOperator,
  issueToken,
  operatorConfigLines,
  serveProvisioner,
} from "../provisioner/mod.ts";
import { jwtExpiry, parseCredsText } from "../src/provision/renewal.ts";

globalThis.addEventListener("error", (e) => {
  if (String((e as ErrorEvent).error?.message ?? e.message).includes("ECONNRESET")) {
    e.preventDefault();
  }
});

type H = {
  nats: { connected: boolean };
  modules: Record<string, { last_error?: string | null; last_renewal?: string | null }>;
};

Deno.test("fault - provisioner down when credentials are due: runs on, retries, renews when back", async () => {
  const home = await Deno.makeTempDir({ prefix: "mr-home-" });
  const work = await Deno.makeTempDir({ prefix: "mr-renew-down-" });
  try {
    await initOperator(home);
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    const acme = await addAccount(home, "acme", { server: srv.url });
    const admin = await connect({
      servers: srv.url,
      authenticator: credsAuthenticator(await Deno.readFile(acme.adminCreds)),
    });
    let prov = await serveProvisioner({ home, servers: [srv.url], credsTtlMs: 30_000 });
    const port = prov.addr.port;
    try {
      await ensureStreams(admin);
      const { token } = await issueToken(home, {
        server: srv.url,
        customer: "acme",
        site: "site1",
        provisioner: `http://127.0.0.1:${port}`,
        ttlMs: 3600_000,
      });
      await Deno.writeTextFile(join(work, "token.jwt"), token);
      const stateDir = join(work, "n1");
      const ok = await provisionCli(join(work, "token.jwt"), stateDir, "n1");
      assert(ok.code === 0, ok.stderr);
      const credsPath = join(stateDir, "identity/node.creds");
      const firstExp = jwtExpiry(parseCredsText(await Deno.readTextFile(credsPath)).jwt)!;

      await prov.shutdown(); // down before the first renewal is due
      await using node = await startNode({
        natsUrl: srv.url,
        stateDir,
        configFile: join(stateDir, "config.json"),
      });
      const failures = () => node.logs().filter((l) => l.includes("credential renewal failed"));
      // retried while still valid; health names the error; still connected before expiry
      await waitFor(() => failures().length >= 2, 30_000, "two renewal attempts before expiry");
      assert(Date.now() < firstExp - 3_000, "the second attempt came well before the expiry");
      assert((await node.health() as H).nats.connected, "connected with the old credentials");
      const h = await node.health() as H;
      assert(h.modules.renewal?.last_error, JSON.stringify(h.modules.renewal));

      // the provisioner is back on its address before the expiry: the next retry renews
      prov = await serveProvisioner({ home, servers: [srv.url], credsTtlMs: 60_000, port });
      const before = (await lastMessage(admin, "MR_EVENTS", "mr.site1.n1.ev.lifecycle"))?.seq ?? 0;
      await waitFor(
        async () => jwtExpiry(parseCredsText(await Deno.readTextFile(credsPath)).jwt)! > firstExp,
        30_000,
        "renewed credentials",
      ).catch((err) => {
        throw new Error(
          `${err.message}\n${node.logs().filter((l) => l.includes("renew")).slice(-4).join("\n")}`,
        );
      });
      assert(Date.now() < firstExp, "renewed before the old credentials expired");
      await waitFor(
        async () => (await node.health() as H).nats.connected,
        20_000,
        "reconnected with the renewed credentials",
      );
      await waitFor(
        async () =>
          ((await lastMessage(admin, "MR_EVENTS", "mr.site1.n1.ev.lifecycle"))?.seq ?? 0) > before,
        20_000,
        "events after the renewal (the renewed event, spooled data)",
      );
      await waitFor(
        async () => (await node.health() as H).modules.renewal?.last_renewal,
        10_000,
        "the renewal in health",
      );
    } finally {
      await prov.shutdown().catch(() => {});
      await admin.close();
    }
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});
