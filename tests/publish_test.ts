// mr-saas key create / publish / agents against real nats-server + s3rver, and a real node
// picking the published agent up.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { startS3 } from "./helpers/s3.ts";
import { compileWat } from "./helpers/wat.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

Deno.test("mr-saas publish - upload once by hash, next version, refusals, node runs it", async () => {
  await using srv = await startNatsServer();
  await using s3 = await startS3();
  const dir = await Deno.makeTempDir();
  const env = {
    NO_COLOR: "1",
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: s3.region,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
  };
  const saas = async (args: string[]) => {
    const o = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "provisioner/main.ts"), "--server", srv.url, ...args],
      stdout: "piped",
      stderr: "piped",
      env,
    }).output();
    return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
  };
  try {
    assertEquals((await saas(["init"])).code, 0);
    const seedFile = join(dir, "sign.nk");
    const kc = await saas(["key", "create", "--out", seedFile]);
    assertEquals(kc.code, 0, kc.stderr);
    const pub = kc.stdout.trim();
    assertMatch(pub, /^A[A-Z2-7]{55}$/);
    assertEquals((await Deno.stat(seedFile)).mode! & 0o777, 0o600);
    assert(!kc.stdout.includes((await Deno.readTextFile(seedFile)).trim()), "seed never printed");
    assertEquals((await saas(["key", "create", "--out", seedFile])).code, 2, "no overwrite");

    const wat = await Deno.readTextFile(join(ROOT, "tests/fixtures/wat/agent_reporter.wat"));
    const wasmFile = join(dir, "reporter.wasm");
    await Deno.writeFile(wasmFile, await compileWat(wat.replace("__VER__", "p1")));
    const common = [
      "--customer",
      "acme",
      "--agent",
      "reporter",
      "--site",
      "site1",
      "--s3",
      `s3://${s3.bucket}/agents`,
      "--sign-key",
      seedFile,
    ];
    const p1 = await saas([
      "publish",
      wasmFile,
      ...common,
      "--grant",
      '{"events":true}',
      "--config",
      '{"v":1}',
      "--interval",
      "300ms",
    ]);
    assertEquals(p1.code, 0, p1.stderr);
    const r1 = JSON.parse(p1.stdout);
    assertEquals(r1.version, 1);
    assertEquals(r1.uploaded, true);
    assertMatch(r1.url, new RegExp(`^s3://${s3.bucket}/agents/sha256/[0-9a-f]{64}\\.wasm$`));
    const p2 = await saas([
      "publish",
      wasmFile,
      ...common,
      "--grant",
      '{"events":true}',
      "--config",
      '{"v":2}',
      "--interval",
      "300ms",
    ]);
    const r2 = JSON.parse(p2.stdout);
    assertEquals(r2.version, 2);
    assertEquals(r2.uploaded, false, "same bytes are not uploaded twice");
    assertEquals(r2.sha256, r1.sha256);

    const badGrant = await saas(["publish", wasmFile, ...common, "--grant", '{"exec":"rm -rf /"}']);
    assertEquals(badGrant.code, 2);
    assertMatch(badGrant.stderr, /grants\.exec/);
    const noGrant = await saas(["publish", wasmFile, ...common, "--grant", "{}"]);
    assertEquals(noGrant.code, 2, "mr_event import without the events grant is refused");
    assertMatch(noGrant.stderr, /mr_event/);
    const noCreds = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "provisioner/main.ts"),
        "--server",
        srv.url,
        "publish",
        wasmFile,
        ...common,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
      clearEnv: true,
    }).output();
    assertEquals(noCreds.code, 2);
    assertMatch(dec.decode(noCreds.stderr), /AWS_ACCESS_KEY_ID/);

    const list = await saas(["agents", "site1", "--json"]);
    const doc = JSON.parse(list.stdout);
    assertEquals(doc.version, 2);
    assertEquals(doc.signer, pub);
    assertEquals(doc.agents[0].config, { v: 2 });

    await using node = await startNode({
      natsUrl: srv.url,
      node: "pub",
      config: { trust: { spec_keys: [pub] }, s3: s3.config },
    });
    const nc = await connect({ servers: srv.url });
    try {
      const jsm = await jetstreamManager(nc);
      await waitFor(
        async () => {
          const info = await jsm.streams.info("MR_EVENTS");
          for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
            const m = await jsm.streams.getMessage("MR_EVENTS", { seq }).catch(() => null);
            const e = m?.json<{ type: string; data: { v?: number } }>();
            if (e?.type === "io.machineroom.agent.reporter.tick" && e.data.v === 2) return true;
          }
          return false;
        },
        30_000,
        "the published agent's events",
      );
    } finally {
      await nc.close();
    }
    await node.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
