/**
 * Fault matrix, the module store and the hot swap (real daemon, nats-server, s3rver behind a
 * fault-injecting proxy that re-signs requests toward s3rver and counts them).
 *
 * Promised:
 * - S3 down (503) or slow during a deploy: the old version keeps running, the download is
 *   retried with jittered backoff (requests spread out, not a tight loop), the node emits
 *   `agent.v1.failed` (code `download_failed`), and the new version runs once S3 is back.
 * - S3 returns corrupted bytes: the module is rejected (`agent.v1.rejected`,
 *   `hash_mismatch`), the old version keeps running, and the node does not retry the same
 *   hash (one request, no retry storm).
 * - `kill -9` of the daemon in the middle of a hot swap: after a restart a working version
 *   runs (the old one from the cache or the new one), and then the new one.
 */
import { assert, assertEquals } from "@std/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { AwsClient } from "aws4fetch";
import { createHash } from "node:crypto";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { startS3 } from "./helpers/s3.ts";
import { compileWat } from "./helpers/wat.ts";
import { readStream } from "./helpers/stream_read.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { createSigningKey, signSpec } from "../src/desired/envelope.ts";

const WAT = await Deno.readTextFile(new URL("./fixtures/wat/agent_reporter.wat", import.meta.url));
const agentModule = (ver: string) => compileWat(WAT.replace("__VER__", ver));
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

type Mode = "ok" | "down" | "slow" | "corrupt";

/** A proxy in front of s3rver: forwards GETs re-signed for s3rver, or fails as told. */
function faultProxy(s3: { endpoint: string; accessKeyId: string; secretAccessKey: string }) {
  const aws = new AwsClient({
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    region: "us-east-1",
    service: "s3",
  });
  const state = { mode: "ok" as Mode, requests: [] as { path: string; at: number }[] };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    state.requests.push({ path, at: performance.now() });
    if (state.mode === "down") return new Response("SlowDown", { status: 503 });
    if (state.mode === "slow") await new Promise((r) => setTimeout(r, 1_500));
    const r = await aws.fetch(`${s3.endpoint}${path}`);
    const body = new Uint8Array(await r.arrayBuffer());
    if (state.mode === "corrupt" && body.length > 10) body[body.length - 5]! ^= 0xff;
    return new Response(body, { status: r.status });
  });
  const endpoint = `http://127.0.0.1:${server.addr.port}`;
  return {
    state,
    endpoint,
    count: (hex: string) => state.requests.filter((r) => r.path.includes(hex)).length,
    gaps: (hex: string) => {
      const at = state.requests.filter((r) => r.path.includes(hex)).map((r) => r.at);
      return at.slice(1).map((t, i) => t - at[i]!);
    },
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
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
      triggers: { interval: "200ms" },
    }],
  };
}

type Ev = { type: string; data: Record<string, unknown> };
async function events(nc: NatsConnection, node: string): Promise<Ev[]> {
  return (await readStream(nc, "MR_EVENTS", `mr.site1.${node}.ev.>`)).map((m) =>
    m.json as unknown as Ev
  );
}
const ticks = (ev: Ev[], v: number) =>
  ev.filter((e) => e.type === "io.machineroom.agent.reporter.tick" && e.data?.v === v).length;

Deno.test("fault - S3 down, slow or corrupt during a deploy; kill -9 mid-swap", async (t) => {
  await using srv = await startNatsServer();
  await using s3 = await startS3();
  await using proxy = faultProxy(s3);
  const nc = await connect({ servers: srv.url });
  await ensureStreams(nc);
  const key = createSigningKey();
  const kv = await new Kvm(nc).open("MR_DESIRED");
  const put = (doc: unknown) => kv.put("site.site1", JSON.stringify(doc));
  const aws = new AwsClient({
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    region: s3.region,
    service: "s3",
  });
  const upload = async (bytes: Uint8Array) => {
    const hex = sha(bytes);
    const r = await aws.fetch(`${s3.endpoint}/${s3.bucket}/sha256/${hex}.wasm`, {
      method: "PUT",
      body: bytes as Uint8Array<ArrayBuffer>,
    });
    assert(r.ok, `upload failed: ${r.status}`);
    return { sha256: hex, size: bytes.length, url: `s3://${s3.bucket}/sha256/${hex}.wasm` };
  };
  const stateDir = await Deno.makeTempDir({ prefix: "mr-fault-s3-" });
  const nodeConfig = {
    trust: { spec_keys: [key.publicKey] },
    s3: { ...s3.config, endpoint: proxy.endpoint },
    settings: { heartbeat_interval: "30s", facts_interval: "5m" },
  };
  let node = await startNode({ natsUrl: srv.url, node: "f1", stateDir, config: nodeConfig });
  try {
    const v1 = await upload(await agentModule("v1"));
    await put(signSpec(spec(1, v1, 1), key.seed));
    await waitFor(async () => ticks(await events(nc, "f1"), 1) >= 2, 30_000, "v1 ticks");

    await t.step(
      "S3 down during a deploy: v1 keeps running, jittered retries, an event",
      async () => {
        const v2 = await upload(await agentModule("v2"));
        proxy.state.mode = "down";
        await put(signSpec(spec(2, v2, 2), key.seed));
        await waitFor(
          async () =>
            (await events(nc, "f1")).some((e) =>
              e.type === "io.machineroom.agent.v1.failed" && e.data.code === "download_failed"
            ),
          30_000,
          "agent.failed download_failed",
        );
        await waitFor(() => proxy.count(v2.sha256) >= 6, 30_000, "retries");
        const before = ticks(await events(nc, "f1"), 1);
        await waitFor(
          async () => ticks(await events(nc, "f1"), 1) > before + 2,
          20_000,
          "v1 still running while S3 is down",
        );
        // not a tight loop: the gaps grow (backoff) and are not all equal (jitter)
        const gaps = proxy.gaps(v2.sha256);
        assert(gaps.every((g) => g >= 50), `retry gaps ${gaps.map(Math.round)}`);
        assert(Math.max(...gaps) > 2 * Math.min(...gaps), `no backoff: ${gaps.map(Math.round)}`);
        assertEquals(ticks(await events(nc, "f1"), 2), 0);

        // slow, then back: the new version runs
        proxy.state.mode = "slow";
        await waitFor(
          async () => ticks(await events(nc, "f1"), 2) >= 2,
          60_000,
          "v2 after S3 is back",
        );
        proxy.state.mode = "ok";
      },
    );

    await t.step("S3 returns corrupted bytes: rejected once, no retry storm", async () => {
      const v3 = await upload(await agentModule("v3"));
      proxy.state.mode = "corrupt";
      await put(signSpec(spec(3, v3, 3), key.seed));
      await waitFor(
        async () =>
          (await events(nc, "f1")).some((e) =>
            e.type === "io.machineroom.agent.v1.rejected" && e.data.code === "hash_mismatch" &&
            e.data.sha256 === v3.sha256
          ),
        30_000,
        "agent.rejected hash_mismatch",
      );
      const before = ticks(await events(nc, "f1"), 2);
      await waitFor(
        async () => ticks(await events(nc, "f1"), 2) > before + 5,
        20_000,
        "v2 still running",
      );
      assertEquals(proxy.count(v3.sha256), 1, "one request for the corrupted module");
      proxy.state.mode = "ok";
    });

    await t.step(
      "kill -9 in the middle of a hot swap: a working version runs after restart",
      async () => {
        const v4 = await upload(await agentModule("v4"));
        proxy.state.mode = "slow"; // the swap is in flight (downloading) for ~1.5 s
        await put(signSpec(spec(4, v4, 4), key.seed));
        await waitFor(() => proxy.count(v4.sha256) >= 1, 20_000, "v4 download started");
        await node.kill();
        proxy.state.mode = "ok";
        const cut = (await events(nc, "f1")).length;
        node = await startNode({ natsUrl: srv.url, node: "f1", stateDir, config: nodeConfig });
        await waitFor(
          async () => {
            const after = (await events(nc, "f1")).slice(cut);
            return ticks(after, 4) >= 2;
          },
          30_000,
          "v4 running after the restart",
        );
        const after = (await events(nc, "f1")).slice(cut);
        const failed = after.filter((e) => e.type === "io.machineroom.agent.v1.failed");
        assertEquals(failed, [], "no failed start after the restart");
      },
    );
  } finally {
    await node.stop();
    await nc.close();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});
