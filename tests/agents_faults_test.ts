// The agent manager's fixed faults, with a real daemon (a builder's binary with a
// compiled-in agent) and real nats-server: `builtin:<name>` spec URLs run by hash (and a
// wrong hash or an unknown name is refused while the running version stays), facts reach
// mr_reconcile only with the `facts` grant, and the spec's `settings` apply live.
import { assert, assertEquals } from "@std/assert";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { compileWat } from "./helpers/wat.ts";
import { ensureStreams } from "../provisioner/streams.ts";
import { createSigningKey, signSpec } from "../src/desired/envelope.ts";

const ROOT = new URL("../", import.meta.url).pathname;

type Ev = { type: string; mragent?: string; data: Record<string, unknown> };
function collect(nc: NatsConnection): Ev[] {
  const out: Ev[] = [];
  nc.subscribe("mr.site1.*.ev.>", {
    callback: (_e, m) => {
      out.push(m.json<Ev>());
    },
  });
  return out;
}

Deno.test("agents - builtin:<name> by hash, facts only with the grant, spec settings applied live", async () => {
  await using srv = await startNatsServer();
  const dir = await Deno.makeTempDir();
  const nc = await connect({ servers: srv.url });
  const events = collect(nc);
  try {
    await ensureStreams(nc);
    const wat = await Deno.readTextFile(join(ROOT, "tests/fixtures/wat/agent_input_echo.wat"));
    const bytes = await compileWat(wat.replace("__VER__", "b1"));
    const wasmFile = join(dir, "echo.wasm");
    await Deno.writeFile(wasmFile, bytes);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const key = createSigningKey();
    const kv = await new Kvm(nc).open("MR_DESIRED");
    const put = (version: number, agent: Record<string, unknown>, settings?: unknown) =>
      kv.put(
        "site.site1",
        JSON.stringify(signSpec({
          version,
          customer: "acme",
          target: "site.site1",
          agents: [{
            name: "echo",
            wasm: { sha256, size: bytes.length, url: "builtin:echo" },
            triggers: { interval: "300ms" },
            grants: { events: true },
            ...agent,
          }],
          ...(settings ? { settings } : {}),
        }, key.seed)),
      );
    await put(1, {}, { heartbeat_interval: "1s" });
    await using node = await startNode({
      natsUrl: srv.url,
      entry: join(ROOT, "tests/fixtures/builtin_main.ts"),
      env: { MR_TEST_BUILTIN_WASM: wasmFile },
      config: {
        trust: { spec_keys: [key.publicKey] },
        settings: { heartbeat_interval: "30s", facts_interval: "5m" },
      },
    });
    const inputs = () =>
      events.filter((e) => e.type === "io.machineroom.agent.echo.input").map((e) => e.data);

    // builtin module ran; without the facts grant, facts is {}
    await waitFor(() => inputs().length >= 2, 30_000, "echo inputs");
    for (const i of inputs()) assertEquals(i.facts, {});

    // settings from the signed spec: heartbeat every 1 s instead of the config's 30 s
    await waitFor(
      async () =>
        ((await node.health())?.settings as { heartbeat_interval?: string })
          ?.heartbeat_interval === "1s",
      20_000,
      "heartbeat 1s in health",
    );
    const alive = () => events.filter((e) => e.type === "io.machineroom.lifecycle.v1.alive").length;
    const a0 = alive();
    await waitFor(() => alive() >= a0 + 3, 20_000, "alive events at the spec's interval");

    // with the facts grant the facts document arrives
    await put(2, { grants: { events: true, facts: true } });
    await waitFor(
      () =>
        inputs().some((i) =>
          (i.facts as { identity?: { node?: string } })?.identity?.node === "node1"
        ),
      30_000,
      "facts with the grant",
    );

    // a wrong hash and an unknown builtin are refused; the running version keeps running
    await put(3, { wasm: { sha256: "e".repeat(64), size: bytes.length, url: "builtin:echo" } });
    await waitFor(
      () =>
        events.some((e) =>
          e.type === "io.machineroom.agent.v1.rejected" && e.data.code === "hash_mismatch"
        ),
      20_000,
      "hash_mismatch",
    );
    await put(4, { wasm: { sha256, size: bytes.length, url: "builtin:nope" } });
    await waitFor(
      () =>
        events.some((e) =>
          e.type === "io.machineroom.agent.v1.rejected" && e.data.code === "not_found" &&
          String(e.data.reason).includes('"nope"')
        ),
      20_000,
      "unknown builtin refused",
    );
    const n = inputs().length;
    await waitFor(() => inputs().length >= n + 2, 20_000, "still running");
    assert(inputs().slice(n).every((i) => (i.facts as Record<string, unknown>).identity));

    // invoke: refusals are clear errors and the daemon answers on
    const invoke = async (payload: unknown) =>
      (await nc.request("mr.site1.node1.cmd.invoke", JSON.stringify(payload), { timeout: 5000 }))
        .json<{ error?: { code: string; message: string } }>();
    assertEquals((await invoke({ agent: "echo", command: "x" })).error?.code, "unsupported");
    assertEquals((await invoke({ agent: "nope", command: "x" })).error?.code, "not_found");
    assertEquals((await invoke({ agent: 1 })).error?.code, "bad_request");

    // no settings in the spec: back to the config's interval
    await put(5, { grants: { events: true, facts: true } });
    await waitFor(
      async () =>
        ((await node.health())?.settings as { heartbeat_interval?: string })
          ?.heartbeat_interval === "30s",
      20_000,
      "heartbeat back to 30s",
    );
  } finally {
    await nc.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
