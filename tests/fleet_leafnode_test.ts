import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { join } from "node:path";
import { natsServerBin, startNatsServer, tempDir } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { ensureStreams } from "../provisioner/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

async function streamMessages(nc: NatsConnection, stream: string, subject: string) {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const out: { id: string; json: Record<string, unknown> }[] = [];
  for (
    let seq = info.state.first_seq;
    info.state.messages > 0 && seq <= info.state.last_seq;
    seq++
  ) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (!m || m.subject !== subject) continue;
    out.push({ id: m.header.get("Nats-Msg-Id"), json: m.json<Record<string, unknown>>() });
  }
  return out;
}

async function leafCount(monitorPort: number): Promise<number> {
  try {
    const r = await fetch(`http://127.0.0.1:${monitorPort}/leafz`);
    return ((await r.json()) as { leafnodes?: number }).leafnodes ?? 0;
  } catch {
    return 0;
  }
}

Deno.test("fleet - site broker as a leaf node: events arrive exactly once after an uplink outage", async () => {
  const leafPort = freePort();
  await using hub = await startNatsServer({
    config: `leafnodes { listen: "127.0.0.1:${leafPort}" }`,
  });
  const admin = await connect({
    servers: hub.url,
    reconnectTimeWait: 200,
    maxReconnectAttempts: -1,
  });
  await using dir = await tempDir();
  let leaf: Deno.ChildProcess | null = null;
  try {
    await ensureStreams(admin);

    // The site broker's config comes from a node config via the CLI.
    const nodeConfig = join(dir.path, "node.json");
    await Deno.writeTextFile(
      nodeConfig,
      JSON.stringify({
        customer: "acme",
        site: "plant",
        node: "edge-1",
        state_dir: join(dir.path, "state"),
        nats: { servers: [hub.url] },
      }),
    );
    const sitePort = freePort();
    const leafConf = join(dir.path, "site-broker.conf");
    const gen = await cli([
      "site",
      "broker-config",
      "--config",
      nodeConfig,
      "--remote",
      `nats-leaf://127.0.0.1:${leafPort}`,
      "--listen",
      `127.0.0.1:${sitePort}`,
      "--monitor-port",
      "0",
      "--out",
      leafConf,
      "--json",
    ]);
    assertEquals(gen.code, 0, gen.stderr);
    assertEquals(JSON.parse(gen.stdout).remotes, [`nats-leaf://127.0.0.1:${leafPort}`]);
    const text = await Deno.readTextFile(leafConf);
    assertStringIncludes(text, "leafnodes {");
    assert(!/jetstream/i.test(text.replace(/^#.*$/gm, "")), "the site broker runs no JetStream");

    leaf = new Deno.Command(natsServerBin(), {
      args: ["-c", leafConf],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitFor(() => leafCount(hub.monitorPort), 15_000, "the leaf to join the hub");

    // A Machine Room host of the site connects to the site broker only.
    await using node = await startNode({
      natsUrl: `nats://127.0.0.1:${sitePort}`,
      site: "plant",
      node: "edge-1",
    });
    // JetStream through the leaf: the startup event lands in the hub's MR_EVENTS.
    await waitFor(
      async () =>
        (await streamMessages(admin, "MR_EVENTS", "mr.plant.edge-1.ev.lifecycle")).some((m) =>
          m.json.type === "io.machineroom.lifecycle.v1.startup"
        ),
      20_000,
      "startup event via the leaf",
    );

    // Uplink outage: the SaaS side goes away, the site broker and the host stay up.
    await hub.stop();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await cli([
        "submit",
        "orders",
        JSON.stringify({ i }),
        "--state-dir",
        node.stateDir,
      ]);
      assertEquals(r.code, 0, r.stderr);
      ids.push(JSON.parse(r.stdout).queued);
    }
    // Let the daemon import and try to replicate them while the uplink is down.
    await waitFor(
      async () => {
        const h = await node.health();
        const spool = h?.spool as { depth?: number } | undefined;
        return (spool?.depth ?? 0) >= 5;
      },
      20_000,
      "submissions spooled during the outage",
    );
    await new Promise((r) => setTimeout(r, 3_000));
    await hub.restart();
    await waitFor(() => leafCount(hub.monitorPort), 20_000, "the leaf to rejoin");

    const got = await waitFor(
      async () => {
        const ms = await streamMessages(admin, "MR_SUBMISSION", "mr.plant.edge-1.submit.orders");
        return ms.length >= 5 ? ms : null;
      },
      30_000,
      "submissions after the outage",
    );
    // Exactly once: the spool drains fully and nothing is duplicated.
    await waitFor(
      async () => ((await node.health())?.spool as { depth?: number })?.depth === 0,
      20_000,
      "spool drained",
    );
    const final = await streamMessages(admin, "MR_SUBMISSION", "mr.plant.edge-1.submit.orders");
    assertEquals(final.length, 5, JSON.stringify(final));
    assertEquals(new Set(final.map((m) => m.id)), new Set(ids));
    assertEquals(got.map((m) => (m.json as { i: number }).i).sort(), [0, 1, 2, 3, 4]);
  } finally {
    if (leaf) {
      try {
        leaf.kill("SIGTERM");
      } catch { /* gone */ }
      await leaf.status;
    }
    await admin.close().catch(() => {});
  }
});
