// End to end: signed desired state in KV → module from S3 by hash → agent running in the
// real daemon → its events in MR_EVENTS; hot-swap; refusals; offline restart from cache.
import { assert, assertEquals } from "@std/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { AwsClient } from "aws4fetch";
import { createHash } from "node:crypto";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { type S3Server, startS3 } from "./helpers/s3.ts";
import { compileWat } from "./helpers/wat.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { createSigningKey, signingKeyFromSeed, signSpec } from "../src/desired/envelope.ts";

const WAT = await Deno.readTextFile(new URL("./fixtures/wat/agent_reporter.wat", import.meta.url));
const agentModule = (ver: string) => compileWat(WAT.replace("__VER__", ver));
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function upload(
  s3: S3Server,
  bytes: Uint8Array,
): Promise<{ sha256: string; size: number; url: string }> {
  const aws = new AwsClient({
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    region: s3.region,
    service: "s3",
  });
  const hex = sha(bytes);
  const r = await aws.fetch(`${s3.endpoint}/${s3.bucket}/sha256/${hex}.wasm`, {
    method: "PUT",
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  assert(r.ok, `upload failed: ${r.status}`);
  return { sha256: hex, size: bytes.length, url: `s3://${s3.bucket}/sha256/${hex}.wasm` };
}

function spec(version: number, wasm: { sha256: string; size: number; url: string }, v: number) {
  return {
    version,
    customer: "acme",
    target: "site.site1",
    agents: [{
      name: "reporter",
      wasm,
      config: { v },
      grants: { events: true },
      triggers: { interval: "300ms" },
    }],
  };
}

type Ev = { type: string; data: Record<string, unknown>; mragent?: string };
async function events(nc: NatsConnection): Promise<Ev[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info("MR_EVENTS");
  const out: Ev[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages; seq++) {
    const m = await jsm.streams.getMessage("MR_EVENTS", { seq }).catch(() => null);
    if (m) out.push(m.json<Ev>());
  }
  return out;
}

const ticks = (ev: Ev[], v: number) =>
  ev.filter((e) => e.type === "io.machineroom.agent.reporter.tick" && e.data?.v === v).length;

Deno.test("e2e - publish, hot-swap, refusals keep the running version, offline restart from cache", async () => {
  await using srv = await startNatsServer();
  await using s3 = await startS3();
  let nc = await connect({ servers: srv.url });
  await ensureStreams(nc);
  const key = createSigningKey();
  const rogue = createSigningKey();
  let kv = await new Kvm(nc).open("MR_DESIRED");
  const put = (doc: unknown) => kv.put("site.site1", JSON.stringify(doc));
  const stateDir = await Deno.makeTempDir({ prefix: "mr-e2e-" });
  try {
    const v1 = await upload(s3, await agentModule("v1"));
    await put(signSpec(spec(1, v1, 1), key.seed));
    const nodeConfig = {
      trust: { spec_keys: [key.publicKey] },
      s3: s3.config,
      settings: { heartbeat_interval: "30s", facts_interval: "5m" },
    };
    let node = await startNode({ natsUrl: srv.url, node: "e2e", stateDir, config: nodeConfig });

    // publish → started + the agent's events
    await waitFor(async () => ticks(await events(nc), 1) >= 2, 30_000, "v1 ticks");
    let ev = await events(nc);
    const started = ev.find((e) => e.type === "io.machineroom.agent.v1.started")!;
    assertEquals(started.data.sha256, v1.sha256);
    assertEquals(started.mragent, "reporter");

    // publish v2 → updated + v2's events
    const v2 = await upload(s3, await agentModule("v2"));
    await put(signSpec(spec(2, v2, 2), key.seed));
    await waitFor(async () => ticks(await events(nc), 2) >= 2, 30_000, "v2 ticks");
    ev = await events(nc);
    const updated = ev.find((e) => e.type === "io.machineroom.agent.v1.updated")!;
    assertEquals(updated.data.from, v1.sha256);
    assertEquals(updated.data.to, v2.sha256);

    // refusals: each gives a rejected event while v2 keeps running
    const rejected = async (type: string, code: string) => {
      await waitFor(
        async () => (await events(nc)).some((e) => e.type === type && e.data.code === code),
        20_000,
        `${type} ${code}`,
      );
      const before = ticks(await events(nc), 2);
      await waitFor(
        async () => ticks(await events(nc), 2) > before + 1,
        20_000,
        "v2 still running",
      );
    };
    await put(signSpec(spec(3, v1, 1), rogue.seed));
    await rejected("io.machineroom.desired.v1.rejected", "untrusted_key");
    await put(signSpec(spec(1, v1, 1), key.seed));
    await rejected("io.machineroom.desired.v1.rejected", "stale_version");
    const kp = signingKeyFromSeed(key.seed);
    const bad = new TextEncoder().encode(
      JSON.stringify({ version: 5, agents: [{ name: "reporter" }] }),
    );
    const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));
    await put({
      spec: b64(bad),
      sig: b64(kp.sign(bad)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
      key: key.publicKey,
    });
    await rejected("io.machineroom.desired.v1.rejected", "invalid_spec");
    // the URL holds v1's bytes but the spec names another (never cached) hash
    const v3hash = sha(await agentModule("v3"));
    await put(signSpec(spec(6, { ...v1, sha256: v3hash }, 1), key.seed));
    await rejected("io.machineroom.agent.v1.rejected", "hash_mismatch");
    await put(
      signSpec(
        spec(
          7,
          { sha256: "e".repeat(64), size: 10, url: `s3://${s3.bucket}/sha256/missing.wasm` },
          1,
        ),
        key.seed,
      ),
    );
    await rejected("io.machineroom.agent.v1.rejected", "not_found");

    // the agents command lists the running version
    const list = (await nc.request("mr.site1.e2e.cmd.agents", "", { timeout: 5000 })).json<
      { name: string; status: string; sha256: string }[]
    >();
    assertEquals(list[0]!.name, "reporter");
    assertEquals(list[0]!.status, "running");

    // restart while NATS is down: the agent runs from the cache and its events are spooled
    assertEquals(await node.stop(), 0);
    await nc.close();
    await srv.stop();
    node = await startNode({
      natsUrl: srv.url,
      node: "e2e",
      stateDir,
      config: nodeConfig,
      waitConnected: false,
    });
    await waitFor(
      async () => {
        const h = await node.health();
        const agents = (h?.modules as Record<string, { running: number }>)?.agents;
        return agents?.running === 1 && (h!.spool as { depth: number }).depth >= 3;
      },
      30_000,
      "agent running offline from the cache",
    );
    await srv.restart();
    nc = await connect({ servers: srv.url });
    kv = await new Kvm(nc).open("MR_DESIRED");
    const seen = ticks(await events(nc), 2);
    await waitFor(
      async () => ticks(await events(nc), 2) > seen + 2,
      30_000,
      "spooled ticks delivered",
    );
    await node.stop();
  } finally {
    await nc.close().catch(() => {});
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});
