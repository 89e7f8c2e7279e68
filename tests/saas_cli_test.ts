// mr-saas init / nodes / events / cmd against a real nats-server and a real daemon.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

async function saas(server: string, args: string[]) {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "provisioner/main.ts"), "--server", server, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

Deno.test("mr-saas - init is idempotent; nodes, events and cmd see a real node", async () => {
  await using srv = await startNatsServer();
  const init = await saas(srv.url, ["init", "--json"]);
  assertEquals(init.code, 0, init.stderr);
  assertEquals(JSON.parse(init.stdout).MR_EVENTS, "created");
  const again = await saas(srv.url, ["init", "--json"]);
  assertEquals(JSON.parse(again.stdout).MR_EVENTS, "unchanged");

  await using node = await startNode({ natsUrl: srv.url, site: "east", node: "web-1" });
  const nodes = await waitFor(
    async () => {
      const r = await saas(srv.url, ["nodes", "--json"]);
      const rows = JSON.parse(r.stdout || "[]") as Record<string, unknown>[];
      return rows.length ? rows : null;
    },
    20_000,
    "node listed",
  );
  assertEquals(nodes[0]!.site, "east");
  assertEquals(nodes[0]!.node, "web-1");
  assertEquals(nodes[0]!.version, "0.1.0");
  assert(typeof nodes[0]!.hostname === "string");

  const events = await waitFor(
    async () => {
      const r = await saas(srv.url, ["events", "--json"]);
      const lines = r.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
      return lines.some((e) => e.type === "io.machineroom.lifecycle.v1.startup") ? lines : null;
    },
    20_000,
    "startup event listed",
  );
  assertEquals(events[0].mrnode, "web-1");
  const human = await saas(srv.url, ["events"]);
  assertMatch(human.stdout, /east\.web-1\s+lifecycle\.v1\.startup/);

  const ping = await saas(srv.url, ["cmd", "east.web-1", "ping"]);
  assertEquals(ping.code, 0, ping.stderr);
  assertEquals(JSON.parse(ping.stdout).pong, true);
  const health = await saas(srv.url, ["cmd", "east.web-1", "health"]);
  assertEquals(JSON.parse(health.stdout).node, "web-1");
  const bad = await saas(srv.url, ["cmd", "east.web-1", "ping", "{oops"]);
  assertEquals(bad.code, 2);
  assertMatch(bad.stderr, /not valid JSON/);
  const unknown = await saas(srv.url, ["cmd", "east.web-1", "frobnicate", "{}"]);
  assertEquals(unknown.code, 1);
  assertEquals(JSON.parse(unknown.stdout).error.code, "unknown_command");
  const absent = await saas(srv.url, ["cmd", "east.nobody", "ping", "--timeout", "2s"]);
  assertEquals(absent.code, 1);
  assertMatch(absent.stderr, /no responders|no reply/);
  const target = await saas(srv.url, ["cmd", "east", "ping"]);
  assertEquals(target.code, 2);
  await node.stop();
});

Deno.test("mr-saas - events --follow prints new events until interrupted", async () => {
  await using srv = await startNatsServer();
  assertEquals((await saas(srv.url, ["init"])).code, 0);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "provisioner/main.ts"),
      "--server",
      srv.url,
      "events",
      "--follow",
      "--json",
    ],
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  await new Promise((r) => setTimeout(r, 1500));
  await using node = await startNode({ natsUrl: srv.url, site: "west", node: "db-1" });
  let buf = "";
  const deadline = Date.now() + 20_000;
  while (!buf.includes("io.machineroom.lifecycle.v1.startup") && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
  }
  assertMatch(buf, /"mrnode":"db-1"/);
  child.kill("SIGINT");
  const st = await child.status;
  assertEquals(st.code, 0);
  await reader.cancel().catch(() => {});
  await node.stop();
});
