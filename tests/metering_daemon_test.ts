/**
 * Sound metering through a running daemon (issue 12 §1): a memory.fill runaway and a
 * spinning start function, both metered, are stopped from inside the module (fuel or the
 * deadline: the runtime's own stop, not the kill boundary, so the sandbox host process is
 * never restarted); the innocent neighbour keeps ticking; once the hostile agents are
 * removed, the daemon and the host process are idle.
 */
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { startS3 } from "./helpers/s3.ts";
import { compileWat } from "./helpers/wat.ts";
import { busyTicks, type Ev, events, upload } from "./helpers/agent_daemon.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { createSigningKey, signSpec } from "../src/desired/envelope.ts";

const REPORTER = await Deno.readTextFile(
  new URL("./fixtures/wat/agent_reporter.wat", import.meta.url),
);

Deno.test("metering daemon - a memory.fill runaway and a start-function spin stop themselves; no kill, the neighbour ticks, idle after", async () => {
  await using srv = await startNatsServer();
  await using s3 = await startS3();
  const nc = await connect({ servers: srv.url });
  await ensureStreams(nc);
  const key = createSigningKey();
  const kv = await new Kvm(nc).open("MR_DESIRED");
  const stateDir = await Deno.makeTempDir({ prefix: "mr-mtd-" });
  try {
    const innocent = {
      name: "innocent",
      wasm: await upload(s3, await compileWat(REPORTER.replace("__VER__", "mtd"))),
      config: { v: 1 },
      grants: { events: true },
      triggers: { interval: "200ms" },
    };
    const spec = (version: number, agents: unknown[]) =>
      JSON.stringify(
        signSpec({ version, customer: "acme", target: "site.site1", agents }, key.seed),
      );
    await kv.put(
      "site.site1",
      spec(1, [
        innocent,
        {
          name: "filler",
          wasm: await upload(s3, await compileWat("fill_agent")),
          limits: { timeout_ms: 800, memory_mb: 32 },
          triggers: { interval: "1s" },
        },
        {
          name: "starter",
          wasm: await upload(s3, await compileWat("start_spin")),
          limits: { fuel: 50_000_000, timeout_ms: 5_000 },
          triggers: { interval: "1s" },
        },
      ]),
    );
    await using node = await startNode({
      natsUrl: srv.url,
      node: "mtd",
      stateDir,
      config: {
        trust: { spec_keys: [key.publicKey] },
        s3: s3.config,
        settings: { heartbeat_interval: "30s", facts_interval: "5m" },
      },
    });
    const failed = (ev: Ev[], agent: string) =>
      ev.filter((e) => e.mragent === agent && e.type.endsWith(".failed"));
    await waitFor(
      async () => {
        const ev = await events(nc);
        return failed(ev, "filler").length >= 2 && failed(ev, "starter").length >= 2;
      },
      60_000,
      "both hostile agents failed twice",
    );
    const ev = await events(nc);
    for (const e of failed(ev, "filler")) {
      assert(["timeout", "fuel_exhausted"].includes(String(e.data.code)), JSON.stringify(e.data));
      assert(!String(e.data.error).includes("killed"), `stopped from inside: ${e.data.error}`);
    }
    for (const e of failed(ev, "starter")) {
      assertEquals(e.data.code, "fuel_exhausted", JSON.stringify(e.data));
    }

    type Health = {
      agents?: {
        agents: { name: string; status: string; runs: number }[];
        sandbox: { pid: number; restarts: number }[];
      };
    };
    const health = async () => (await node.health())?.modules as Health | undefined;
    const runs = async () =>
      (await health())?.agents?.agents.find((a) => a.name === "innocent")?.runs ?? 0;
    const runs0 = await runs();
    await waitFor(async () => (await runs()) > runs0 + 5, 20_000, "innocent keeps ticking");
    const sandbox = (await health())!.agents!.sandbox;
    assertEquals(sandbox.length, 1);
    assertEquals(
      sandbox[0]!.restarts,
      0,
      "metering stopped them: the host process was never killed",
    );

    // without the hostile agents, nothing keeps spinning
    await kv.put("site.site1", spec(2, [innocent]));
    await waitFor(
      async () => {
        const agents = (await health())?.agents?.agents ?? [];
        return agents.filter((a) => a.name !== "innocent").every((a) => a.status === "stopped");
      },
      20_000,
      "hostile agents removed",
    );
    assert((await busyTicks(sandbox[0]!.pid)) <= 15, "sandbox host process idle");
    assert((await busyTicks(node.pid)) <= 15, "daemon idle");
  } finally {
    await nc.close();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});
