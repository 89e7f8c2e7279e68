// Hot-swap latency (issue 4): from `publishAgent` returning to the new version's first
// event at the SaaS, over 20 swaps of a ~1 MB module, on loopback with a real node,
// nats-server and S3-protocol server; plus download+verify throughput of the artifact store.
import { connect } from "@nats-io/transport-node";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { AwsClient } from "aws4fetch";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { startS3 } from "../tests/helpers/s3.ts";
import { startNode } from "../tests/helpers/daemon.ts";
import { compileWat } from "../tests/helpers/wat.ts";
import { ensureStreams, publishAgent } from "../provisioner/mod.ts";
import { createSigningKey } from "../src/desired/envelope.ts";
import { createArtifactStore } from "../src/artifacts/mod.ts";

const SWAPS = 20;
const wat = await Deno.readTextFile(
  new URL("../tests/fixtures/wat/agent_reporter.wat", import.meta.url),
);
// ~1 MB: a data segment of filler after the version marker
const pad = "x".repeat(1_000_000);
const moduleFor = (v: number) =>
  compileWat(
    wat.replace(
      '(data (i32.const 3000) "__VER__")',
      `(data (i32.const 3000) "v${v}")\n  (data (i32.const 8192) "${pad}")`,
    ).replace('(memory (export "memory") 1)', '(memory (export "memory") 17)'),
  );

await using srv = await startNatsServer();
await using s3 = await startS3("agents");
const nc = await connect({ servers: srv.url });
await ensureStreams(nc);
const key = createSigningKey();
const s3Access = {
  endpoint: s3.endpoint,
  region: s3.region,
  accessKeyId: s3.accessKeyId,
  secretAccessKey: s3.secretAccessKey,
};
const publish = async (v: number) =>
  await publishAgent({
    customer: "acme",
    nc,
    wasm: await moduleFor(v),
    agent: "reporter",
    site: "bench",
    bucketUrl: "s3://agents",
    s3: s3Access,
    seed: key.seed,
    fields: {
      config: { v },
      grants: { events: true },
      triggers: { interval: "30s" },
      limits: { memory_mb: 32 },
    },
  });

const firstTick = new Map<number, (t: number) => void>();
nc.subscribe("mr.bench.*.ev.agent", {
  callback: (_e, m) => {
    const ev = m.json<{ type: string; data: { v?: number } }>();
    if (ev.type === "io.machineroom.agent.reporter.tick" && typeof ev.data?.v === "number") {
      firstTick.get(ev.data.v)?.(performance.now());
      firstTick.delete(ev.data.v);
    }
  },
});
const waitTick = (v: number) => new Promise<number>((r) => firstTick.set(v, r));

const stateDir = await Deno.makeTempDir({ prefix: "mr-hotswap-" });
let w = waitTick(0);
const first = await publish(0);
await using node = await startNode({
  natsUrl: srv.url,
  site: "bench",
  node: "n1",
  stateDir,
  config: { trust: { spec_keys: [key.publicKey] }, s3: s3.config },
});
await w;
console.log(`hotswap: module size ${(first.size / 1048576).toFixed(2)} MB`);
const lat: number[] = [];
for (let v = 1; v <= SWAPS; v++) {
  w = waitTick(v);
  await publish(v);
  const t1 = performance.now();
  const seen = await w;
  lat.push(seen - t1);
}
lat.sort((a, b) => a - b);
const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;
console.log(
  `hotswap: publish → new version's first event over ${SWAPS} swaps of a 1 MB module: p50 ${
    pct(0.5).toFixed(0)
  } ms, p95 ${pct(0.95).toFixed(0)} ms (target p50 ≤ 500 ms)`,
);

// download + verify throughput (8 MB object, fresh cache each run)
const big = new Uint8Array(8 * 1048576).map((_, i) => (i * 31) % 251);
const hex = createHash("sha256").update(big).digest("hex");
const aws = new AwsClient({
  accessKeyId: s3.accessKeyId,
  secretAccessKey: s3.secretAccessKey,
  region: s3.region,
  service: "s3",
});
await aws.fetch(`${s3.endpoint}/agents/sha256/${hex}.wasm`, {
  method: "PUT",
  body: big as Uint8Array<ArrayBuffer>,
});
const runs: number[] = [];
for (let i = 0; i < 5; i++) {
  const dir = await Deno.makeTempDir();
  const store = createArtifactStore({ dir, s3: s3.config });
  const t = performance.now();
  await store.fetch({ sha256: hex, size: big.length, url: `s3://agents/sha256/${hex}.wasm` });
  runs.push(performance.now() - t);
  await Deno.remove(dir, { recursive: true });
}
runs.sort((a, b) => a - b);
console.log(
  `hotswap: download + verify from S3 (8 MB, SigV4): ${
    (8 / (runs[2]! / 1000)).toFixed(0)
  } MB/s (median of 5)`,
);
await node.stop();
await nc.close();
await Deno.remove(join(stateDir), { recursive: true }).catch(() => {});
Deno.bench("hotswap - (numbers printed above)", { n: 1 }, () => {});
