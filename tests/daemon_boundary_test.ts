/**
 * The host-function boundary through a running daemon: a hostile agent sends an oversized
 * event, submits at priority 0, forges core log keys and floods the log on every
 * reconcile. The daemon refuses each with the documented error, counts the dropped log
 * lines in health, lets nothing oversized reach the spool (no dead letters) and keeps
 * running and healthy.
 */
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { AwsClient } from "aws4fetch";
import { createHash } from "node:crypto";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { type S3Server, startS3 } from "./helpers/s3.ts";
import { compileWat } from "./helpers/wat.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { createSigningKey, signSpec } from "../src/desired/envelope.ts";
import { streamIds } from "../src/replicator/testdata/streams.ts";

async function upload(s3: S3Server, bytes: Uint8Array) {
  const aws = new AwsClient({
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    region: s3.region,
    service: "s3",
  });
  const hex = createHash("sha256").update(bytes).digest("hex");
  const r = await aws.fetch(`${s3.endpoint}/${s3.bucket}/sha256/${hex}.wasm`, {
    method: "PUT",
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  assert(r.ok, `upload failed: ${r.status}`);
  return { sha256: hex, size: bytes.length, url: `s3://${s3.bucket}/sha256/${hex}.wasm` };
}

type Line = Record<string, unknown> & { msg?: string; agent?: string };
type Health = {
  status: string;
  spool: { depth: number; dead_letters: number };
  modules: { agents?: { log_dropped?: { total: number; by_agent: Record<string, number> } } };
};

Deno.test("daemon boundary - an oversized event, a priority-0 submit, forged log keys and a log flood are refused; the daemon stays healthy", async () => {
  await using srv = await startNatsServer();
  await using s3 = await startS3();
  const nc = await connect({ servers: srv.url });
  try {
    await ensureStreams(nc);
    const key = createSigningKey();
    const kv = await new Kvm(nc).open("MR_DESIRED");
    const wasm = await upload(s3, await compileWat("boundary_agent"));
    await kv.put(
      "site.site1",
      JSON.stringify(signSpec({
        version: 1,
        customer: "acme",
        target: "site.site1",
        agents: [{
          name: "hostile",
          wasm,
          grants: { events: true, submit: ["orders"] },
          triggers: { interval: "1s" },
        }],
      }, key.seed)),
    );
    await using node = await startNode({
      natsUrl: srv.url,
      node: "bnd",
      config: {
        trust: { spec_keys: [key.publicKey] },
        s3: s3.config,
        settings: { heartbeat_interval: "30s", facts_interval: "5m" },
      },
    });
    const lines = () => node.logs().map((l) => JSON.parse(l) as Line);
    const h = await waitFor(
      async () => {
        const d = await node.health() as Health | null;
        const dropped = d?.modules.agents?.log_dropped?.by_agent["hostile"] ?? 0;
        return dropped > 0 && d ? d : null;
      },
      40_000,
      "log flood counted in health",
    ).catch(async (err) => {
      console.error(
        node.logs().filter((l) => /agent|sandbox|hostile/.test(l)).slice(-30).join("\n"),
      );
      console.error(JSON.stringify((await node.health() as Health | null)?.modules.agents));
      throw err;
    });
    assert(h.modules.agents!.log_dropped!.total > 0);
    // the replies the agent logged (Extism log_info, written for the agent by the host)
    const replies = lines().filter((l) => l.agent === "hostile" && String(l.msg).startsWith("{"))
      .map((l) => JSON.parse(String(l.msg)));
    assert(
      replies.some((r) => r.error?.code === "payload_too_large"),
      JSON.stringify(replies).slice(0, 500),
    );
    assert(replies.some((r) => typeof r.id === "string" && r.priority === 2), "priority clamped");
    // the forged line: the host's core keys, the agent's fields nested, no audit mark
    const forged = lines().filter((l) => l.msg === "forged");
    assert(forged.length > 0);
    for (const l of forged) {
      assertEquals(l.agent, "hostile");
      assertEquals(l.level, "warn");
      assertEquals(l.audit, undefined);
      assertEquals((l.fields as Record<string, unknown>).agent, "victim");
    }
    assert(!lines().some((l) => l.agent === "victim"), "no line for another agent");
    // the submissions arrive; nothing oversized was spooled, nothing parked
    await waitFor(async () => (await streamIds(nc, "MR_SUBMISSION")).length > 0, 20_000, "submit");
    const after = await node.health() as Health;
    assertEquals(after.spool.dead_letters, 0);
    assert(["healthy", "degraded"].includes(after.status), after.status);
    // still running and serving
    const pong = await nc.request("mr.site1.bnd.cmd.ping", "", { timeout: 5000 });
    assertEquals(JSON.parse(new TextDecoder().decode(pong.data)).pong, true);
  } finally {
    await nc.close();
  }
});
