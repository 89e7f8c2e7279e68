// The fleet console end to end, in a real headless Chromium, against the production
// topology (nats-server in operator mode, nodes enrolled with their own credentials, the
// governor mediator), s3rver and two real daemons: log in; see both nodes; a staged rollout's per-node
// progress; a published hot-swap in the live tail and the agents view; a node's facts,
// a metrics graph with points, ping and invoke replies; an action without the CSRF token
// refused; a stopped node shown offline (never green).
//
// With MR_SCREENSHOTS=DIR (deno task screenshots) it also writes the README's pictures.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { join } from "node:path";
import { startOperatorFleet } from "./helpers/operator_fleet.ts";
import { startS3 } from "./helpers/s3.ts";
import { compileWat } from "./helpers/wat.ts";
import { type RunningNode, waitFor } from "./helpers/daemon.ts";
import { launchBrowser } from "./helpers/browser.ts";
import { publishAgent } from "../provisioner/publish.ts";
import { createSigningKey } from "../src/desired/envelope.ts";
import { startConsole } from "../provisioner/console/mod.ts";

const shots = Deno.env.get("MR_SCREENSHOTS");

const agent = (version: string) =>
  compileWat(`(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\\"status\\":\\"ok\\"}")
  (data (i32.const 64) "{\\"keeper\\":\\"${version}\\"}")
  (func $out (param $src i32) (param $n i32) (local $b i64) (local $i i32)
    (local.set $b (call $alloc (i64.extend_i32_u (local.get $n))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $b) (i64.extend_i32_u (local.get $i)))
        (i32.load8_u (i32.add (local.get $src) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $output_set (local.get $b) (i64.extend_i32_u (local.get $n))))
  (func (export "mr_reconcile") (result i32) (call $out (i32.const 0) (i32.const 15)) (i32.const 0))
  (func (export "mr_command") (result i32) (call $out (i32.const 64) (i32.const ${
    13 + version.length
  })) (i32.const 0)))`);

Deno.test("console - a vendor watches and steers two real nodes in Chromium", async () => {
  const key = createSigningKey();
  await using fleet = await startOperatorFleet({ specKeys: [key.publicKey] });
  await using s3 = await startS3();
  const nc = fleet.admin;
  const nodes: RunningNode[] = [];
  try {
    const publish = async (version: string) =>
      await publishAgent({
        nc,
        wasm: await agent(version),
        agent: "keeper",
        customer: "acme",
        site: "site1",
        bucketUrl: `s3://${s3.bucket}`,
        s3: {
          endpoint: s3.endpoint,
          region: s3.region,
          accessKeyId: s3.accessKeyId,
          secretAccessKey: s3.secretAccessKey,
        },
        seed: key.seed,
        fields: { rollout: { governor: "rollout", capacity: 1 }, triggers: { interval: "1m" } },
      });
    const v1 = await publish("v1");
    for (const n of ["n1", "n2"]) {
      // enrolled through the provisioner, then given the S3 access and a 1 s heartbeat
      const p = await fleet.provisionNode("site1", n);
      const cfg = JSON.parse(await Deno.readTextFile(p.configPath));
      cfg.s3 = s3.config;
      cfg.settings = { ...cfg.settings, heartbeat_interval: "1s", facts_interval: "30s" };
      await Deno.writeTextFile(p.configPath, JSON.stringify(cfg), { mode: 0o600 });
      nodes.push(await fleet.startNode("site1", n));
    }
    await using c = await startConsole({ connections: new Map([["acme", nc]]), port: 0 });
    await using b = await launchBrowser();
    const page = b.page;
    const shot = async (name: string) => {
      if (shots) await page.screenshot({ path: join(shots, `console-${name}.png`) });
    };

    // log in: the token URL lands on the fleet
    await page.goto(c.loginUrl);
    assertEquals(new URL(page.url()).pathname, "/fleet");
    const row = (n: string) => page.locator(`tr[data-node="acme/site1/${n}"]`);
    await row("n1").waitFor({ timeout: 30_000 });
    await row("n2").waitFor({ timeout: 30_000 });
    await waitFor(
      async () =>
        (await row("n1").getAttribute("data-health")) === "healthy" &&
        (await row("n2").getAttribute("data-health")) === "healthy",
      30_000,
      "both nodes healthy in the fleet view",
    );
    await waitFor(
      async () => (await row("n1").textContent())?.includes("1 running") ?? false,
      60_000,
      "n1 shows its agent running",
    );

    // the rollout of v1 through governor "rollout": per-node progress reaches 2/2
    await page.click('header a[href="/agents"]');
    const rollout = page.locator('.rollout[data-agent="keeper"]');
    await waitFor(
      async () =>
        (await rollout.locator(".rollout-count").textContent())?.startsWith("2/2") ?? false,
      60_000,
      "rollout of v1 at 2/2",
    );
    assertEquals(await rollout.locator("tr[data-node]").count(), 2);
    assertStringIncludes(
      (await page.locator('.desired[data-key="acme/site.site1"]').textContent())!,
      v1.sha256.slice(0, 12),
    );

    // a hot-swap: v2 appears in the live tail and, once applied, in the agents view
    await page.click('header a[href="/events"]');
    await page.locator("#tail").waitFor();
    const v2 = await publish("v2");
    const updated = page.locator('#tail details[data-type="io.machineroom.agent.v1.updated"]');
    await updated.first().waitFor({ timeout: 60_000 });
    await updated.first().locator("summary").click();
    assertStringIncludes((await updated.first().textContent())!, v2.sha256);
    await page.click("#pause");
    await page.locator("#resume").waitFor();
    await page.click("#resume");
    await page.click('header a[href="/agents"]');
    await waitFor(
      async () =>
        (await page.locator('.desired[data-key="acme/site.site1"]').textContent())?.includes(
          v2.sha256.slice(0, 12),
        ) ?? false,
      10_000,
      "agents view shows v2 desired",
    );
    await waitFor(
      async () => {
        const t = await rollout.textContent();
        return (t?.includes("2/2") && !t.includes(v1.sha256.slice(0, 12))) ?? false;
      },
      60_000,
      "rollout of v2 at 2/2 with both nodes on v2",
    );
    await shot("rollout");

    // the node view: facts, a metrics graph with points, ping and invoke
    await page.click('header a[href="/fleet"]');
    await row("n1").locator("a").first().click();
    assertEquals(new URL(page.url()).pathname, "/node/acme/site1/n1");
    await page.locator("#facts summary").click();
    assertStringIncludes((await page.locator("#facts").textContent())!, '"platform"');
    const chart = page.locator('.chart[data-title="mr_host_memory_used_percent"]');
    // the graph reloads every 10 s: wait for one with at least two points
    await waitFor(
      async () =>
        Number(await chart.getAttribute("data-points", { timeout: 1_000 }).catch(() => 0)) >= 2,
      60_000,
      "a memory graph with points",
    );
    assert(await chart.locator("canvas").count() > 0, "uPlot drew a canvas");
    await page.click("#ping");
    const answered = page.locator('#action-result [data-outcome="answered"]');
    await answered.waitFor({ timeout: 10_000 });
    assertStringIncludes((await answered.textContent())!, '"pong": true');
    await page.selectOption('select[aria-label="agent"]', "keeper");
    await page.fill('input[aria-label="command"]', "status");
    await page.click("#invoke");
    await waitFor(
      async () =>
        (await page.locator("#action-result").textContent())?.includes('"keeper": "v2"') ?? false,
      10_000,
      "invoke reply from v2",
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${await page.locator("#action-result").textContent()}`);
    });
    await shot("node");

    // an action without the CSRF token is refused, with it accepted
    const status = await page.evaluate(async () => {
      const body = JSON.stringify({
        action: "ping",
        targets: [{ customer: "acme", site: "site1", node: "n1" }],
      });
      const bad = await fetch("/api/action", { method: "POST", body });
      const { csrf } = await (await fetch("/api/session")).json();
      const good = await fetch("/api/action", {
        method: "POST",
        body,
        headers: { "x-csrf-token": csrf },
      });
      return [bad.status, good.status];
    });
    assertEquals(status, [403, 200]);

    // a stopped node is shown offline, never green
    await nodes[1]!.stop();
    await page.click('header a[href="/fleet"]');
    await waitFor(
      async () => (await row("n2").getAttribute("data-health")) === "offline",
      30_000,
      "n2 offline",
    );
    assertEquals((await row("n2").locator(".badge").first().textContent())?.trim(), "offline");
    assertEquals(await row("n1").getAttribute("data-health"), "healthy");
    assertEquals((await page.locator('[data-count="offline"] b').textContent())?.trim(), "1");
    await shot("fleet");
  } finally {
    for (const n of nodes) await n.stop().catch(() => {});
  }
});
