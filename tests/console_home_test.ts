// `mr-saas console --home D` in operator mode: every customer account of the vendor home
// in one console (the same site/node names in two customers stay apart), the audit view
// with its verification, and console actions appended to the same audit chain.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { simulateNodes } from "./helpers/sim_fleet.ts";
import { launchBrowser } from "./helpers/browser.ts";
import { waitFor } from "./helpers/daemon.ts";
import {
  addAccount,
  ensureStreams,
  initOperator,
  operatorConfigLines,
} from "../provisioner/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test("console - --home shows every customer and the audit chain, actions audited", async () => {
  const home = await Deno.makeTempDir({ prefix: "mr-console-home-" });
  const conns: NatsConnection[] = [];
  let child: Deno.ChildProcess | null = null;
  try {
    await initOperator(home, { natsPort: 4222 });
    await using srv = await startNatsServer({ config: await operatorConfigLines(home) });
    for (const customer of ["acme", "globex"]) {
      const a = await addAccount(home, customer, { server: srv.url });
      const nc = await connect({
        servers: srv.url,
        authenticator: credsAuthenticator(await Deno.readFile(a.adminCreds)),
      });
      conns.push(nc);
      await ensureStreams(nc);
      await simulateNodes(nc, customer, [{ site: "lab", node: "n1" }, { site: "lab", node: "n2" }]);
    }
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "provisioner/main.ts"),
        "--home",
        home,
        "--server",
        srv.url,
        "console",
        "--listen",
        "127.0.0.1:0",
        "--json",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`console exited: ${out}`);
      out += value;
    }
    reader.releaseLock();
    const info = JSON.parse(out.split("\n")[0]!);
    assertEquals(info.customers, ["acme", "globex"]);
    assert(typeof info.metrics_token === "string" && info.metrics_token.length >= 32);

    const login = await fetch(info.login_url, { redirect: "manual" });
    await login.body?.cancel();
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
    const get = async (p: string) =>
      (await fetch(`${info.url}${p}`, { headers: { cookie } })).json();
    const fleet = await waitFor(
      async () => {
        const f = await get("/api/fleet");
        return f.counts.total === 4 ? f : null;
      },
      20_000,
      "4 nodes in two customers",
    );
    assertEquals(
      fleet.nodes.map((n: { customer: string; node: string }) => `${n.customer}/${n.node}`),
      ["acme/n1", "acme/n2", "globex/n1", "globex/n2"],
    );
    assertEquals((await get("/api/fleet?customer=globex")).nodes.length, 2);

    const { csrf } = await get("/api/session");
    const r = await fetch(`${info.url}/api/action`, {
      method: "POST",
      headers: { cookie, "x-csrf-token": csrf },
      body: JSON.stringify({
        action: "ping",
        timeout_ms: 300,
        targets: [{ customer: "globex", site: "lab", node: "n1" }],
      }),
    });
    assertEquals((await r.json()).results[0].outcome, "offline", "simulated nodes do not answer");

    const audit = await get("/api/audit");
    assertEquals(audit.verify.ok, true, JSON.stringify(audit.verify));
    const events = audit.records.map((x: { event: string }) => x.event);
    assertEquals(events[0], "console.action.ping", "newest first: the console's own action");
    assert(events.includes("account.add"), "written by operator commands, same chain");

    await using b = await launchBrowser();
    await b.page.goto(info.login_url.replace("/fleet", "") + "&next=/audit");
    await b.page.locator("#audit-status").waitFor({ timeout: 15_000 });
    assertStringIncludes((await b.page.locator("#audit-status").textContent())!, "chain verified");
    await b.page.goto(`${info.url}/fleet?customer=globex`);
    await b.page.locator('tr[data-node="globex/lab/n1"]').waitFor({ timeout: 15_000 });
  } finally {
    if (child) {
      child.kill("SIGTERM");
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
    }
    for (const nc of conns) await nc.close();
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
});
