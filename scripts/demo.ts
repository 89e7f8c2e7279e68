/**
 * `deno task demo`: a local SaaS stack (nats-server with JetStream, an S3-protocol server),
 * one edge node, an agent published to it and hot-swapped to a second version — with the
 * events printed live as they arrive at the SaaS. Ctrl-C (or `--duration 20s`) stops
 * everything and leaves nothing running.
 *
 * @module
 */
import { connect } from "@nats-io/transport-node";
import { Command } from "commander";
import { join } from "node:path";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { startS3 } from "../tests/helpers/s3.ts";
import { startNode } from "../tests/helpers/daemon.ts";
import { compileWat } from "../tests/helpers/wat.ts";
import { ensureStreams } from "../provisioner/streams.ts";
import { publishAgent } from "../provisioner/publish.ts";
import { formatEvent } from "../provisioner/commands/streams.ts";
import { createSigningKey } from "../src/desired/envelope.ts";
import { parseDuration } from "../src/util/duration.ts";
import { type RunningConsole, startConsole } from "../provisioner/console/mod.ts";

const opts = new Command("demo")
  .option("--duration <d>", "stop after this long, once the hot-swap was seen (default: Ctrl-C)")
  .parse(Deno.args, { from: "user" })
  .opts<{ duration?: string }>();

const say = (s: string) => console.log(`\x1b[1m==> ${s}\x1b[0m`);
const stop = new AbortController();
Deno.addSignalListener("SIGINT", () => stop.abort());
Deno.addSignalListener("SIGTERM", () => stop.abort());
// --duration: stop after this long, but never before the hot-swap was seen (a slow machine
// needs longer to show it; 60 s more at most)
let swapped = false;
if (opts.duration) {
  const ms = parseDuration(opts.duration);
  const started = Date.now();
  const check = setInterval(() => {
    const elapsed = Date.now() - started;
    if (elapsed >= ms && (swapped || elapsed >= ms + 60_000)) {
      clearInterval(check);
      stop.abort();
    }
  }, 250);
}

const work = await Deno.makeTempDir({ prefix: "mr-demo-" });
say(`working directory ${work}`);
const srv = await startNatsServer();
say(`nats-server (JetStream) at ${srv.url}`);
const s3 = await startS3("agents");
say(`S3-protocol server (s3rver) at ${s3.endpoint}, bucket "agents"`);
const nc = await connect({ servers: srv.url, name: "demo" });
let node: Awaited<ReturnType<typeof startNode>> | null = null;
let fleetConsole = null as RunningConsole | null;
try {
  await ensureStreams(nc);
  say(
    "mr-saas init: streams MR_EVENTS, MR_NODES, MR_SUBMISSION, MR_METRICS; KV MR_DESIRED, MR_ELECTION",
  );
  const key = createSigningKey();
  say(`signing key ${key.publicKey}`);

  // every event that reaches the SaaS, live
  nc.subscribe("mr.*.*.ev.>", {
    callback: (_err, m) => {
      try {
        const ev = m.json<Record<string, unknown>>();
        console.log("   " + formatEvent(ev));
        if (ev.type === "io.machineroom.agent.v1.updated") swapped = true;
      } catch { /* not JSON */ }
    },
  });

  const wat = await Deno.readTextFile(
    new URL("../tests/fixtures/wat/agent_reporter.wat", import.meta.url),
  );
  const s3Access = {
    endpoint: s3.endpoint,
    region: s3.region,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
  };
  const publish = async (ver: string, v: number) => {
    const r = await publishAgent({
      customer: "acme",
      nc,
      wasm: await compileWat(wat.replace("__VER__", ver)),
      agent: "reporter",
      site: "demo",
      bucketUrl: "s3://agents",
      s3: s3Access,
      seed: key.seed,
      fields: {
        config: { v, message: `hello from version ${v}` },
        grants: { events: true },
        triggers: { interval: "2s" },
      },
    });
    say(
      `mr-saas publish: agent "reporter" ${r.sha256.slice(0, 12)} → ${r.key} version ${r.version}`,
    );
  };
  await publish("v1", 1);

  // the console starts while the node does
  const consoleOpts = { connections: new Map([["acme", nc]]), log: () => {} };
  const consoleStarting = startConsole({ ...consoleOpts, port: 8480 })
    .catch(() => startConsole({ ...consoleOpts, port: 0 })) // 8480 taken: any free port
    .then((c) => (fleetConsole = c));
  await Deno.mkdir(join(work, "node"), { recursive: true, mode: 0o700 });
  node = await startNode({
    natsUrl: srv.url,
    site: "demo",
    node: "edge-1",
    customer: "acme",
    stateDir: join(work, "node"),
    config: {
      trust: { spec_keys: [key.publicKey] },
      s3: s3.config,
      settings: { heartbeat_interval: "5s", facts_interval: "5m" },
    },
  });
  say(`edge node demo.edge-1 running (pid ${node.pid}); events follow`);
  say(`fleet console: open ${(await consoleStarting).loginUrl}`);

  const sleep = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      stop.signal.addEventListener("abort", () => {
        clearTimeout(t);
        r();
      });
    });
  await sleep(8_000);
  if (!stop.signal.aborted) {
    await publish("v2", 2);
    say("hot-swap: the node downloads v2, initialises it beside v1, then replaces v1");
  }
  if (!stop.signal.aborted) {
    say(opts.duration ? `running until --duration ${opts.duration}` : "Ctrl-C to stop");
    await new Promise<void>((r) => stop.signal.addEventListener("abort", () => r()));
  }
} finally {
  say("stopping");
  await fleetConsole?.close();
  if (node) await node.stop();
  await nc.close().catch(() => {});
  await s3.close();
  await srv[Symbol.asyncDispose]();
  await Deno.remove(work, { recursive: true }).catch(() => {});
  say("stopped; nothing left running");
}
Deno.exit(0);
