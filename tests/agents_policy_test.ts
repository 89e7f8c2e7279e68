// The customer's side of the trust, with a running daemon: a local policy.json denies
// agents by name or hash and caps grants over any signed spec (agent.v1.rejected, reason
// local_policy naming the rule), is picked up live, reports its hash in facts, and a
// malformed file keeps the last good policy with an error naming the path.
// `machine-room agents --json` shows what runs, signed by whom, with which grants.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
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
const dec = new TextDecoder();

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

Deno.test("agents - local policy: deny by name and hash, cap exec, live changes, malformed keeps the last good", async () => {
  await using srv = await startNatsServer();
  const dir = await Deno.makeTempDir();
  const nc = await connect({ servers: srv.url });
  const events = collect(nc);
  try {
    await ensureStreams(nc);
    const wat = await Deno.readTextFile(join(ROOT, "tests/fixtures/wat/agent_input_echo.wat"));
    const bytes = await compileWat(wat.replace("__VER__", "p1"));
    const wasmFile = join(dir, "echo.wasm");
    await Deno.writeFile(wasmFile, bytes);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const wasm = { sha256, size: bytes.length, url: "builtin:echo" };
    const key = createSigningKey();
    const kv = await new Kvm(nc).open("MR_DESIRED");
    const agent = (name: string, grants: Record<string, unknown> = {}) => ({
      name,
      wasm,
      triggers: { interval: "300ms" },
      grants: { events: true, ...grants },
    });
    const put = (version: number, agents: unknown[]) =>
      kv.put(
        "site.site1",
        JSON.stringify(
          signSpec({ version, customer: "acme", target: "site.site1", agents }, key.seed),
        ),
      );

    const stateDir = await Deno.makeTempDir({ prefix: "mr-policy-" });
    const policyFile = join(stateDir, "policy.json");
    const policy1 = JSON.stringify({ deny: { names: ["blocked"] } });
    await Deno.writeTextFile(policyFile, policy1);
    await put(1, [agent("echo"), agent("blocked"), agent("runner", { exec: [["true"]] })]);
    await using node = await startNode({
      natsUrl: srv.url,
      stateDir,
      entry: join(ROOT, "tests/fixtures/builtin_main.ts"),
      env: { MR_TEST_BUILTIN_WASM: wasmFile },
      config: { trust: { spec_keys: [key.publicKey] } },
    });
    const rejected = (agentName: string, rule: string) =>
      events.some((e) =>
        e.type === "io.machineroom.agent.v1.rejected" && e.mragent === agentName &&
        e.data.code === "local_policy" && e.data.rule === rule
      );
    const inputs = (name: string) =>
      events.filter((e) => e.type === `io.machineroom.agent.${name}.input`).length;

    // deny by name: "blocked" is refused, the others run
    await waitFor(() => rejected("blocked", "deny.names"), 30_000, "blocked refused by name");
    await waitFor(() => inputs("echo") >= 2 && inputs("runner") >= 2, 30_000, "echo and runner");
    assertEquals(inputs("blocked"), 0);

    // the policy's hash is in facts
    const policySha = (text: string) => createHash("sha256").update(text).digest("hex");
    const facts = async () =>
      (await nc.request("mr.site1.node1.cmd.facts", "", { timeout: 5000 })).json<
        { policy?: { sha256: string | null; error: string | null } }
      >();
    assertEquals((await facts()).policy?.sha256, policySha(policy1));

    // live change: cap exec and deny echo's hash → runner and echo stop, no restart
    const policy2 = JSON.stringify({
      deny: { names: ["blocked"], sha256: [sha256] },
      grants: { exec: false },
    });
    await Deno.writeTextFile(policyFile, policy2);
    await waitFor(
      () => rejected("echo", "deny.sha256") || rejected("runner", "grants.exec"),
      20_000,
      "running agents refused by the new policy",
    );
    // deny.sha256 applies to every agent of that module; the rule named is the first that holds
    await waitFor(() => rejected("runner", "deny.sha256"), 20_000, "runner refused");
    await waitFor(
      () =>
        events.filter((e) =>
          e.type === "io.machineroom.agent.v1.stopped" && e.data.reason === "local_policy"
        ).length >= 2,
      20_000,
      "both stopped",
    );
    await waitFor(async () => (await facts()).policy?.sha256 === policySha(policy2), 20_000);

    // exec cap alone: runner refused by grants.exec, echo back
    const policy3 = JSON.stringify({ grants: { exec: false } });
    await Deno.writeTextFile(policyFile, policy3);
    const e0 = inputs("echo");
    await waitFor(() => inputs("echo") >= e0 + 2, 20_000, "echo runs again");
    await waitFor(() => rejected("runner", "grants.exec"), 20_000, "runner refused by exec cap");
    await waitFor(() => inputs("blocked") >= 2, 20_000, "blocked no longer denied");

    // malformed policy: error naming the path and field, last good policy stays in force
    await Deno.writeTextFile(policyFile, JSON.stringify({ grants: { exec: "no" } }));
    await waitFor(
      async () => (await facts()).policy?.error?.includes(`${policyFile}: grants.exec`),
      20_000,
      "policy error in facts",
    );
    await waitFor(
      () => events.some((e) => e.type === "io.machineroom.policy.v1.rejected"),
      20_000,
      "policy rejected event",
    );
    assertEquals((await facts()).policy?.sha256, policySha(policy3), "last good policy kept");
    const r0 = inputs("runner");
    await new Promise((r) => setTimeout(r, 1500));
    assertEquals(inputs("runner"), r0, "runner still refused");
    // health.json is rewritten every 2 s
    await waitFor(
      async () =>
        String(
          ((await node.health())?.modules as { agents: { policy: { error: string } } })?.agents
            .policy.error,
        ).includes(policyFile),
      20_000,
      "policy error in health",
    );

    // machine-room agents --json: what runs, its hash, signer, grants and limits
    const o = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "main.ts"), "agents", "--state-dir", stateDir, "--json"],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    assertEquals(o.code, 0, dec.decode(o.stderr));
    const list = JSON.parse(dec.decode(o.stdout)) as {
      policy: { sha256: string };
      agents: {
        name: string;
        status: string;
        sha256: string;
        signer: string;
        grants: { events: boolean; exec: string[][] };
        limits: { memory_mb: number };
        version: number;
      }[];
    };
    assertEquals(list.policy.sha256, policySha(policy3));
    const echo = list.agents.find((a) => a.name === "echo")!;
    assertEquals(echo.status, "running");
    assertEquals(echo.sha256, sha256);
    assertEquals(echo.signer, key.publicKey);
    assertEquals(echo.grants.events, true);
    assertEquals(echo.limits.memory_mb, 32);
    assertEquals(echo.version, 1);
    const runner = list.agents.find((a) => a.name === "runner")!;
    assertEquals(runner.status, "rejected");
    assertEquals(runner.grants.exec, [["true"]]);
    const human = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "main.ts"), "agents", "--state-dir", stateDir],
      stdout: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    assertStringIncludes(dec.decode(human.stdout), "echo");
    assert(dec.decode(human.stdout).includes(key.publicKey.slice(0, 12)));
    await node.stop();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  } finally {
    await nc.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
