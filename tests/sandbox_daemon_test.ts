/**
 * The kill boundary through a running daemon: an agent the metering cannot stop (loaded
 * unmetered through the test-only MR_SANDBOX_TEST_UNMETERED) is killed at deadline + grace
 * with its sandbox host process, then quarantined; a table bomb is refused with
 * memory_limit; a start function that never returns (unmetered) is killed at load, three
 * times, then quarantined; a loop of granted 1 MB mr_file_read replies with memory_mb 1 stops with
 * memory_limit; the innocent neighbour on the same process keeps ticking; the daemon stays
 * healthy and its CPU and the new host process's return to idle.
 */
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { startS3 } from "./helpers/s3.ts";
import { compileWat } from "./helpers/wat.ts";
import { busyTicks, cpuTicks, events, upload } from "./helpers/agent_daemon.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { createSigningKey, signSpec } from "../src/desired/envelope.ts";

const REPORTER = await Deno.readTextFile(
  new URL("./fixtures/wat/agent_reporter.wat", import.meta.url),
);

Deno.test("sandbox daemon - an unstoppable agent is killed and quarantined; the neighbour keeps its cadence, the daemon stays healthy", async () => {
  await using srv = await startNatsServer();
  await using s3 = await startS3();
  const nc = await connect({ servers: srv.url });
  await ensureStreams(nc);
  const key = createSigningKey();
  const kv = await new Kvm(nc).open("MR_DESIRED");
  const stateDir = await Deno.makeTempDir({ prefix: "mr-sbd-" });
  try {
    const innocent = await upload(s3, await compileWat(REPORTER.replace("__VER__", "inno")));
    const spin = await upload(s3, await compileWat("spin_agent"));
    const tables = await upload(s3, await compileWat("tables"));
    // a granted ~1 MB file read in a loop by an agent with memory_mb 1
    const big = `${stateDir}/big.txt`;
    await Deno.writeTextFile(big, "x".repeat(1024 * 1024 - 64));
    const json = JSON.stringify({ path: big });
    const len = [0, 8, 16, 24].map((s) =>
      `\\${((json.length >> s) & 255).toString(16).padStart(2, "0")}`
    )
      .join("");
    const floodWat = (await Deno.readTextFile(
      new URL("./fixtures/wat/flood_agent.wat", import.meta.url),
    )).replace("__LEN__", len).replace("__JSON__", json.replaceAll('"', '\\"'));
    const flood = await upload(s3, await compileWat(floodWat));
    const hang = await upload(s3, await compileWat("start_hang"));
    await kv.put(
      "site.site1",
      JSON.stringify(signSpec({
        version: 1,
        customer: "acme",
        target: "site.site1",
        agents: [
          {
            name: "innocent",
            wasm: innocent,
            config: { v: 1 },
            grants: { events: true },
            triggers: { interval: "200ms" },
          },
          {
            name: "runaway",
            wasm: spin,
            limits: { timeout_ms: 800 },
            triggers: { interval: "1s" },
          },
          { name: "tables", wasm: tables, limits: { memory_mb: 1 } },
          // unmetered too: its start function runs at load, which is killed at its deadline
          { name: "hang", wasm: hang, limits: { timeout_ms: 1_000 } },
          {
            name: "flood",
            wasm: flood,
            grants: { files: { read: [`${stateDir}/*.txt`] } },
            limits: { memory_mb: 1, timeout_ms: 3_000 },
            triggers: { interval: "1s" },
          },
        ],
      }, key.seed)),
    );
    await using node = await startNode({
      natsUrl: srv.url,
      node: "sbd",
      stateDir,
      config: {
        trust: { spec_keys: [key.publicKey] },
        s3: s3.config,
        settings: { heartbeat_interval: "30s", facts_interval: "5m" },
      },
      env: { MR_SANDBOX_TEST_UNMETERED: "runaway,hang" },
    });
    const agentsHealth = async () =>
      (await node.health())?.modules as
        | {
          agents?: {
            agents: { name: string; status: string; last_error?: string }[];
            sandbox: { pid: number; restarts: number }[];
          };
        }
        | undefined;

    // the table bomb is refused at load with memory_limit
    await waitFor(
      async () =>
        (await events(nc)).some((e) =>
          e.mragent === "tables" && e.type.endsWith(".rejected") && e.data.code === "memory_limit"
        ),
      30_000,
      "tables rejected with memory_limit",
    );
    // the host-reply flood stops with memory_limit (not 2 GB of host memory)
    await waitFor(
      async () =>
        (await events(nc)).some((e) =>
          e.mragent === "flood" && e.type.endsWith(".failed") && e.data.code === "memory_limit"
        ),
      30_000,
      "flood stopped with memory_limit",
    );
    // the runaway is killed three times (a failed event with timeout each), then quarantined
    await waitFor(
      async () =>
        (await events(nc)).some((e) =>
          e.mragent === "runaway" && e.type.endsWith(".rejected") && e.data.code === "timeout"
        ),
      60_000,
      "runaway quarantined",
    );
    // the hanging load is killed like a call, three times, then quarantined
    await waitFor(
      async () =>
        (await events(nc)).some((e) =>
          e.mragent === "hang" && e.type.endsWith(".rejected") &&
          String(e.data.reason).includes("quarantined")
        ),
      60_000,
      "hang quarantined",
    );
    const ev = await events(nc);
    const kills = ev.filter((e) =>
      e.mragent === "runaway" && e.type.endsWith(".failed") && e.data.code === "timeout"
    );
    assert(kills.length >= 3, `runaway failed ${kills.length} times`);
    assert(kills.every((k) => String(k.data.error).includes("killed")), JSON.stringify(kills[0]));
    const rejected = ev.find((e) => e.mragent === "runaway" && e.type.endsWith(".rejected"))!;
    assert(String(rejected.data.reason).includes("quarantined"), JSON.stringify(rejected.data));

    // the innocent kept running across the kills (its cadence is measured in
    // bench/sandbox_process_bench.ts; health.json is only written every 2 s)
    type A = { name: string; status: string; runs: number };
    const agent = async (name: string) =>
      ((await agentsHealth())?.agents?.agents as A[] | undefined)?.find((a) => a.name === name);
    const runs0 = (await agent("innocent"))?.runs ?? 0;
    await waitFor(
      async () => ((await agent("innocent"))?.runs ?? 0) > runs0 + 5,
      20_000,
      "innocent still running after the quarantine",
    );
    await waitFor(
      async () => (await agent("runaway"))?.status === "rejected",
      20_000,
      "runaway rejected in health",
    );

    // the daemon is healthy and reports the restarted host process; both are idle
    const h = await agentsHealth();
    const byName = new Map(h!.agents!.agents.map((a) => [a.name, a]));
    assertEquals(byName.get("innocent")?.status, "running");
    assertEquals(byName.get("runaway")?.status, "rejected");
    assertEquals(byName.get("tables")?.status, "rejected");
    await waitFor(
      async () => (await agent("hang"))?.status === "rejected",
      20_000,
      "hang rejected",
    );
    // the daemon still answers commands
    const listed = (await nc.request("mr.site1.sbd.cmd.agents", "", { timeout: 5000 })).string();
    assert(listed.includes("innocent"), listed.slice(0, 300));
    const host = h!.agents!.sandbox;
    assertEquals(host.length, 1);
    assert(host[0]!.restarts >= 3, `restarts ${host[0]!.restarts}`);
    const rss = Number(Deno.readTextFileSync(`/proc/${host[0]!.pid}/statm`).split(" ")[1]) * 4096;
    assert(rss < 200 * 1048576, `sandbox host process RSS ${rss >> 20} MB`);
    // the flood agent restarts with backoff: allow its short bursts
    assert((await busyTicks(host[0]!.pid)) <= 30, "sandbox host process idle");
    assert((await busyTicks(node.pid)) <= 15, "daemon idle");
    assertEquals(cpuTicks(node.pid) !== null, true, "daemon alive");
  } finally {
    await nc.close();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});
