// mr-saas unpublish / rollback through the CLI against real nats-server + s3rver and a
// real daemon: the node follows each new version, stops an unpublished agent with
// mr_shutdown (agent.v1.removed) and keeps its cached modules.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { startS3 } from "./helpers/s3.ts";
import { compileWat } from "./helpers/wat.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

type Ev = { type: string; mrnode?: string; mragent?: string; data: Record<string, unknown> };

function collect(nc: NatsConnection): Ev[] {
  const out: Ev[] = [];
  nc.subscribe("mr.site1.*.ev.>", {
    callback: (_e, m) => {
      out.push(m.json<Ev>());
    },
  });
  return out;
}

Deno.test("mr-saas unpublish/rollback - new versions the node follows; removal keeps the cache", async () => {
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
  const nc = await connect({ servers: srv.url });
  const events = collect(nc);
  try {
    assertEquals((await saas(["init"])).code, 0);
    const seed = join(dir, "sign.nk");
    const pub = (await saas(["key", "create", "--out", seed])).stdout.trim();
    const wat = await Deno.readTextFile(join(ROOT, "tests/fixtures/wat/agent_reporter.wat"));
    const publish = async (ver: string) => {
      const f = join(dir, `${ver}.wasm`);
      await Deno.writeFile(f, await compileWat(wat.replace("__VER__", ver)));
      const r = await saas([
        "publish",
        f,
        "--agent",
        "reporter",
        "--site",
        "site1",
        "--s3",
        `s3://${s3.bucket}`,
        "--sign-key",
        seed,
        "--customer",
        "acme",
        "--grant",
        '{"events":true}',
        "--config",
        JSON.stringify({ v: ver }),
        "--interval",
        "300ms",
      ]);
      assertEquals(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { sha256: string; version: number };
    };
    const ticks = (v: string) =>
      events.filter((e) => e.type === "io.machineroom.agent.reporter.tick" && e.data?.v === v)
        .length;
    const ticking = async (v: string) => {
      const n = ticks(v);
      await waitFor(() => ticks(v) >= n + 2, 30_000, `ticks of ${v}`);
    };
    const v1 = await publish("v1");
    await using node = await startNode({
      natsUrl: srv.url,
      config: { trust: { spec_keys: [pub] }, s3: s3.config },
    });
    await ticking("v1");
    const v2 = await publish("v2");
    await ticking("v2");

    // rollback (default: the previous module) is a new version naming v1's module
    const rb = await saas([
      "rollback",
      "--agent",
      "reporter",
      "--site",
      "site1",
      "--sign-key",
      seed,
      "--json",
    ]);
    assertEquals(rb.code, 0, rb.stderr);
    const r1 = JSON.parse(rb.stdout);
    assertEquals(r1.sha256, v1.sha256);
    assertEquals(r1.from_sha256, v2.sha256);
    assertEquals(r1.version, v2.version + 1);
    await waitFor(
      () =>
        events.some((e) => e.type === "io.machineroom.agent.v1.updated" && e.data.to === v1.sha256),
      30_000,
      "updated back to v1",
    );
    await ticking("v1");

    // --to-sha256 goes forward again; unknown targets are refused with the known versions
    const fw = await saas([
      "rollback",
      "--agent",
      "reporter",
      "--site",
      "site1",
      "--sign-key",
      seed,
      "--to-sha256",
      v2.sha256,
      "--json",
    ]);
    assertEquals(fw.code, 0, fw.stderr);
    await ticking("v2");
    const bad = await saas([
      "rollback",
      "--agent",
      "reporter",
      "--site",
      "site1",
      "--sign-key",
      seed,
      "--to-version",
      "99",
    ]);
    assertEquals(bad.code, 2);
    assertStringIncludes(bad.stderr, "no version 99");
    assertStringIncludes(bad.stderr, "earlier versions:");
    const both = await saas([
      "rollback",
      "--agent",
      "reporter",
      "--site",
      "site1",
      "--sign-key",
      seed,
      "--to-version",
      "1",
      "--to-sha256",
      v1.sha256,
    ]);
    assertEquals(both.code, 2);

    // unpublish: mr_shutdown, agent.v1.removed, no more ticks, modules still cached
    const un = await saas([
      "unpublish",
      "--agent",
      "reporter",
      "--site",
      "site1",
      "--sign-key",
      seed,
      "--json",
    ]);
    assertEquals(un.code, 0, un.stderr);
    const u = JSON.parse(un.stdout);
    assertEquals(u.sha256, v2.sha256);
    await waitFor(
      () =>
        events.some((e) =>
          e.type === "io.machineroom.agent.v1.removed" && e.mragent === "reporter"
        ),
      30_000,
      "agent.v1.removed",
    );
    const after = ticks("v2");
    await new Promise((r) => setTimeout(r, 1500));
    assertEquals(ticks("v2"), after, "no ticks after removal");
    for (const h of [v1.sha256, v2.sha256]) {
      assert((await Deno.stat(join(node.stateDir, "cas", "sha256", `${h}.wasm`))).isFile);
    }
    const running = JSON.parse(
      await Deno.readTextFile(join(node.stateDir, "agents", "running.json")),
    );
    assertEquals(Object.keys(running.agents), []);
    const again = await saas([
      "unpublish",
      "--agent",
      "reporter",
      "--site",
      "site1",
      "--sign-key",
      seed,
    ]);
    assertEquals(again.code, 2);
    assertStringIncludes(again.stderr, "not published at site.site1");

    // a rollback after an unpublish brings the agent back (from the cache: no download)
    const back = await saas([
      "rollback",
      "--agent",
      "reporter",
      "--site",
      "site1",
      "--sign-key",
      seed,
      "--to-sha256",
      v1.sha256,
      "--json",
    ]);
    assertEquals(back.code, 0, back.stderr);
    await ticking("v1");

    // unpublish for one node hides the site's agent there
    const one = await saas([
      "unpublish",
      "--agent",
      "reporter",
      "--site",
      "site1",
      "--node",
      "node1",
      "--sign-key",
      seed,
      "--json",
    ]);
    assertEquals(one.code, 0, one.stderr);
    assertEquals(JSON.parse(one.stdout).key, "node.site1.node1");
    await waitFor(
      () => events.filter((e) => e.type === "io.machineroom.agent.v1.removed").length >= 2,
      30_000,
      "removed on node1",
    );
  } finally {
    await nc.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
