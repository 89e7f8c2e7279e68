// Integration tests of the edge daemon (`machine-room run`) against a real nats-server.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { connect, errors, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { startOperatorFleet } from "./helpers/operator_fleet.ts";
import { ensureStreams } from "../provisioner/mod.ts";

const dec = new TextDecoder();
type SpoolDoc = { depth: number; dropped: number };
/** The spool section of a health document. */
const sp = (d: Record<string, unknown> | null | undefined): SpoolDoc =>
  (d?.spool ?? { depth: -1, dropped: -1 }) as SpoolDoc;
const ROOT = new URL("../", import.meta.url).pathname;

async function streamMessages(
  nc: NatsConnection,
  stream: string,
): Promise<{ subject: string; id: string; json: Record<string, unknown> }[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const out = [];
  for (
    let seq = info.state.first_seq;
    seq <= info.state.last_seq && info.state.messages > 0;
    seq++
  ) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (!m) continue;
    out.push({
      subject: m.subject,
      id: m.header.get("Nats-Msg-Id"),
      json: m.json<Record<string, unknown>>(),
    });
  }
  return out;
}

async function request(
  nc: NatsConnection,
  subject: string,
  body = "",
): Promise<Record<string, unknown>> {
  const r = await nc.request(subject, body, { timeout: 5000 });
  return JSON.parse(dec.decode(r.data));
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

Deno.test("daemon - facts and startup event arrive with the contract's subjects and fields; commands answer", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  try {
    await ensureStreams(nc);
    await using node = await startNode({
      natsUrl: srv.url,
      site: "lab",
      node: "n-1",
      customer: "acme",
    });

    const startup = await waitFor(
      async () =>
        (await streamMessages(nc, "MR_EVENTS")).find((m) =>
          (m.json.type as string) === "io.machineroom.lifecycle.v1.startup"
        ),
      20_000,
      "startup event",
    );
    assertEquals(startup.subject, "mr.lab.n-1.ev.lifecycle");
    assertEquals(startup.json.specversion, "1.0");
    assertEquals(startup.json.source, "mr://acme/lab/n-1");
    assertEquals(startup.json.mrsite, "lab");
    assertEquals(startup.json.mrnode, "n-1");
    assertEquals(startup.json.datacontenttype, "application/json");
    assertEquals(startup.id, startup.json.id);
    assertMatch(startup.json.id as string, /^[0-9A-HJKMNP-TV-Z]{26}$/);

    const facts = await waitFor(
      async () =>
        (await streamMessages(nc, "MR_NODES")).find((m) => m.subject === "mr.lab.n-1.facts"),
      20_000,
      "facts",
    );
    const f = facts.json as Record<string, Record<string, unknown>>;
    assertEquals(f.identity!.site, "lab");
    assertEquals(f.identity!.node, "n-1");
    assert(typeof f.cpu!.cores === "number" && (f.cpu!.cores as number) > 0);
    assert((f.memory!.total as number) > 0);
    assertEquals(f.os!.platform, "linux");
    assert(Array.isArray(f.disks) && Array.isArray(f.network));
    assertEquals(f.agent!.version, "0.1.0");

    const pong = await request(nc, "mr.lab.n-1.cmd.ping");
    assertEquals(pong.pong, true);
    assertEquals(pong.node, "n-1");

    const health = await request(nc, "mr.lab.n-1.cmd.health");
    assertEquals(health.status, "healthy");
    const nats = health.nats as Record<string, unknown>;
    assertEquals(nats.connected, true);
    assert((nats.out_msgs as number) > 0);
    const spool = health.spool as Record<string, unknown>;
    assertEquals(typeof spool.depth, "number");
    assertEquals(spool.dropped, 0);
    assert("oldest_unsent_age_ms" in spool);
    assert((health.uptime_s as number) >= 0);
    assert(((health.memory as { rss: number }).rss) > 0);

    const cmdFacts = await request(nc, "mr.lab.n-1.cmd.facts");
    assertEquals((cmdFacts.identity as Record<string, unknown>).node, "n-1");
    const agents = await request(nc, "mr.lab.n-1.cmd.agents");
    assert(Array.isArray(agents) || typeof agents === "object");

    // malformed payloads and unknown commands get error replies, never a crash
    const bad = await request(nc, "mr.lab.n-1.cmd.ping", "{not json");
    assertEquals((bad.error as Record<string, unknown>).code, "bad_request");
    const unknown = await request(nc, "mr.lab.n-1.cmd.reboot-now", "{}");
    assertEquals((unknown.error as Record<string, unknown>).code, "unknown_command");
    const still = await request(nc, "mr.lab.n-1.cmd.ping");
    assertEquals(still.pong, true);

    // `status --json` prints the same document from the local state
    await waitFor(async () => (await node.health())?.nats, 10_000, "health.json");
    const st = await cli(["status", "--state-dir", node.stateDir, "--json"]);
    assertEquals(st.code, 0, st.stderr);
    const local = JSON.parse(st.stdout);
    assertEquals(local.node, "n-1");
    assertEquals(local.pid, node.pid);
    assert(["healthy", "degraded"].includes(local.status));

    // `submit` goes through the spool to MR_SUBMISSION
    const sub = await cli(["submit", "orders", '{"n":1}', "--state-dir", node.stateDir]);
    assertEquals(sub.code, 0, sub.stderr);
    const queued = JSON.parse(sub.stdout).queued as string;
    const got = await waitFor(
      async () => (await streamMessages(nc, "MR_SUBMISSION")).find((m) => m.id === queued),
      20_000,
      "submission",
    );
    assertEquals(got.subject, "mr.lab.n-1.submit.orders");
    assertEquals(got.json, { n: 1 });

    // graceful stop: shutdown event, exit 0
    assertEquals(await node.stop(), 0);
    await waitFor(
      async () =>
        (await streamMessages(nc, "MR_EVENTS")).some((m) =>
          m.json.type === "io.machineroom.lifecycle.v1.shutdown"
        ),
      10_000,
      "shutdown event",
    );
    const after = await cli(["status", "--state-dir", node.stateDir, "--json"]);
    assertEquals(after.code, 1);
    assertEquals(JSON.parse(after.stdout).status, "stopped");
  } finally {
    await nc.close();
  }
});

Deno.test("daemon - a node started while the server is down spools and delivers once it is up", async () => {
  await using srv = await startNatsServer();
  let nc = await connect({ servers: srv.url });
  await ensureStreams(nc);
  await nc.close();
  await srv.stop();
  await using node = await startNode({
    natsUrl: srv.url,
    node: "offline",
    waitConnected: false,
    config: { settings: { heartbeat_interval: "300ms", facts_interval: "5m" } },
  });
  // it runs and spools while the server is down
  const h = await waitFor(
    async () => {
      const d = await node.health();
      return d && sp(d).depth >= 3 ? d : null;
    },
    20_000,
    "spooled events while offline",
  );
  assertEquals((h.nats as Record<string, unknown>).connected, false);
  assertEquals(h.status, "degraded");
  await srv.restart();
  nc = await connect({ servers: srv.url });
  try {
    const events = await waitFor(
      async () => {
        const ev = await streamMessages(nc, "MR_EVENTS");
        return ev.some((m) => m.json.type === "io.machineroom.lifecycle.v1.startup") &&
            ev.filter((m) => m.json.type === "io.machineroom.lifecycle.v1.alive").length >= 2
          ? ev
          : null;
      },
      30_000,
      "delivery after the server came up",
    );
    const ids = events.map((e) => e.id);
    assertEquals(new Set(ids).size, ids.length, "no duplicates");
    const facts = await streamMessages(nc, "MR_NODES");
    assert(facts.some((m) => m.subject === "mr.site1.offline.facts"));
  } finally {
    await nc.close();
  }
});

Deno.test("daemon - a server outage while alive events accumulate delivers every one exactly once", async () => {
  await using srv = await startNatsServer();
  const nc0 = await connect({ servers: srv.url });
  await ensureStreams(nc0);
  await nc0.close();
  await using node = await startNode({
    natsUrl: srv.url,
    node: "outage",
    config: { settings: { heartbeat_interval: "200ms", facts_interval: "5m" } },
  });
  await new Promise((r) => setTimeout(r, 1000));
  await srv.stop();
  // alive events accumulate in the spool during the outage
  await waitFor(
    async () => sp(await node.health()).depth >= 10,
    20_000,
    "backlog",
  );
  await srv.restart();
  const nc = await connect({ servers: srv.url });
  try {
    await waitFor(
      async () => {
        const h = await node.health();
        return h && (h.nats as Record<string, unknown>).connected &&
          sp(h).depth === 0;
      },
      30_000,
      "drained backlog",
    );
    const code = await node.stop();
    assertEquals(code, 0);
    // every id the node's spool ever accepted was sent; compare with the stream
    const ev = await streamMessages(nc, "MR_EVENTS");
    const ids = ev.map((e) => e.id);
    assertEquals(new Set(ids).size, ids.length, "no duplicates in MR_EVENTS");
    const alive = ev.filter((e) => e.json.type === "io.machineroom.lifecycle.v1.alive");
    assert(alive.length >= 10, `expected ≥ 10 alive events, got ${alive.length}`);
    // alive events are periodic: no gap much longer than the outage-free interval means none were lost
    const times = alive.map((e) => Date.parse(e.json.time as string)).sort((a, b) => a - b);
    for (let i = 1; i < times.length; i++) {
      assert(
        times[i]! - times[i - 1]! < 1500,
        `gap of ${times[i]! - times[i - 1]!} ms between alive events`,
      );
    }
    const h = await node.health();
    assertEquals(sp(h).depth, 0);
    assertEquals(sp(h).dropped, 0);
  } finally {
    await nc.close();
  }
});

Deno.test("daemon - kill -9 mid-burst then restart loses no spooled submission and duplicates none", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  const stateDir = await Deno.makeTempDir({ prefix: "mr-kill-" });
  try {
    await ensureStreams(nc);
    // a burst of 3,000 submissions queued on disk before the daemon starts
    const N = 3000;
    const outbox = join(stateDir, "outbox");
    await Deno.mkdir(outbox, { recursive: true });
    const { ulid } = await import("../src/util/ulid.ts");
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const id = ulid();
      ids.push(id);
      await Deno.writeTextFile(
        join(outbox, `${id}.json`),
        JSON.stringify({ subject: "burst", payload: { i } }),
      );
    }
    // A loaded machine can deliver the whole burst between the first delivery seen and the
    // kill. So the stream takes at most HOLD of them (discard new: the rest is refused, a
    // transient error the daemon retries): the kill is mid-burst by construction, with
    // publishes in flight when it comes early, with refused retries when it comes late.
    const HOLD = 2000;
    const jsm = await jetstreamManager(nc);
    const sub = (await jsm.streams.info("MR_SUBMISSION")).config;
    await jsm.streams.update("MR_SUBMISSION", { ...sub, max_msgs: HOLD, discard: "new" });
    const first = await startNode({ natsUrl: srv.url, node: "burst", stateDir });
    // kill it while it is importing/replicating
    await waitFor(
      async () => (await jsm.streams.info("MR_SUBMISSION")).state.messages > 0,
      30_000,
      "first deliveries",
    );
    await first.kill();
    const midway = (await jsm.streams.info("MR_SUBMISSION")).state.messages;
    await jsm.streams.update("MR_SUBMISSION", { ...sub, max_msgs: -1, discard: sub.discard });
    await using second = await startNode({ natsUrl: srv.url, node: "burst", stateDir });
    await waitFor(
      async () => (await jsm.streams.info("MR_SUBMISSION")).state.messages >= N,
      60_000,
      "all submissions",
    );
    await waitFor(
      async () => sp(await second.health()).depth === 0,
      30_000,
      "drained",
    );
    const got = await streamMessages(nc, "MR_SUBMISSION");
    const gotIds = got.map((m) => m.id);
    assertEquals(new Set(gotIds).size, gotIds.length, "no duplicates");
    assertEquals(new Set(gotIds), new Set(ids), "every queued submission arrived");
    const payloads = new Set(got.map((m) => (m.json as { i: number }).i));
    assertEquals(payloads.size, N);
    assert(midway > 0 && midway <= HOLD && midway < N, `the kill happened mid-burst (${midway})`);
  } finally {
    await nc.close();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("daemon - malformed config is refused with the field named and exit 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = join(dir, "config.json");
    await Deno.writeTextFile(
      p,
      JSON.stringify({
        customer: "a",
        site: "Bad Site",
        node: "n",
        state_dir: dir,
        nats: { servers: [] },
      }),
    );
    const r = await cli(["run", "--config", p]);
    assertEquals(r.code, 2);
    assertMatch(r.stderr, /site/);
    assertMatch(r.stderr, /nats\.servers/);
    await Deno.writeTextFile(p, "{ not json");
    const r2 = await cli(["run", "--config", p]);
    assertEquals(r2.code, 2);
    assertMatch(r2.stderr, /Invalid JSON/);
    await Deno.writeTextFile(
      p,
      JSON.stringify({
        customer: "a",
        site: "s",
        node: "n",
        state_dir: dir,
        nats: { servers: ["x"] },
        settings: { heartbeat_interval: "soon" },
      }),
    );
    const r3 = await cli(["run", "--config", p]);
    assertEquals(r3.code, 2);
    assertMatch(r3.stderr, /settings\.heartbeat_interval/);
    const r4 = await cli(["submit", "orders", "{bad", "--state-dir", dir]);
    assertEquals(r4.code, 2);
    assertMatch(r4.stderr, /not valid JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("daemon - a full spool drops lowest-priority oldest first and reports it in health", async () => {
  // the daemon runs offline with a tiny spool: alive events overflow it
  const dir = await Deno.makeTempDir();
  try {
    await using node = await startNode({
      natsUrl: "nats://127.0.0.1:1",
      node: "full",
      stateDir: dir,
      waitConnected: false,
      config: {
        spool: { max_bytes: 8192, ttl: "1h" },
        settings: { heartbeat_interval: "100ms", facts_interval: "5m" },
      },
    });
    const h = await waitFor(
      async () => {
        const d = await node.health();
        return d && sp(d).dropped > 0 ? d : null;
      },
      20_000,
      "overflow",
    );
    assert(["degraded", "unhealthy"].includes(h.status as string));
    assert((h.reasons as string[]).some((r) => /dropped/.test(r)));
    // it keeps running and answers status
    const st = await cli(["status", "--state-dir", dir, "--json"]);
    assertEquals(JSON.parse(st.stdout).pid, node.pid);
    // the startup event (priority 1) outlives the alive events (priority 2)
    const { openSpool } = await import("../src/spool/mod.ts");
    await node.stop();
    const spool = openSpool(join(dir, "spool.db"));
    try {
      const rows = spool.next(1000);
      assert(rows.some((r) => r.priority === 1), "higher priority messages kept");
    } finally {
      spool.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("daemon - commands answer with the node's own provisioned creds in operator mode; another node cannot send them", async () => {
  await using fleet = await startOperatorFleet();
  await using node = await fleet.startNode("lab", "n-1");
  const nc = fleet.admin; // the vendor's tooling (mr-saas cmd) in the customer account
  const pong = await waitFor(
    () => request(nc, "mr.lab.n-1.cmd.ping").catch(() => null),
    20_000,
    "ping answered",
  );
  assertEquals(pong.pong, true);
  assertEquals(pong.node, "n-1");
  const health = await request(nc, "mr.lab.n-1.cmd.health");
  assertEquals(health.status === "healthy" || health.status === "degraded", true);
  assertEquals((health.nats as Record<string, unknown>).connected, true);
  const facts = await request(nc, "mr.lab.n-1.cmd.facts");
  assertEquals((facts.identity as Record<string, unknown>).node, "n-1");
  const bad = await request(nc, "mr.lab.n-1.cmd.ping", "{not json");
  assertEquals((bad.error as Record<string, unknown>).code, "bad_request");
  const unknown = await request(nc, "mr.lab.n-1.cmd.reboot-now", "{}");
  assertEquals((unknown.error as Record<string, unknown>).code, "unknown_command");
  // the reply went out under the node's `resp` permission; the node's own events arrive
  await waitFor(
    async () =>
      (await streamMessages(nc, "MR_EVENTS")).some((m) => m.subject === "mr.lab.n-1.ev.lifecycle"),
    20_000,
    "startup event",
  );
  // another node of the same site cannot command n-1 (publish refused by permissions)
  const other = await (await fleet.provisionNode("lab", "n-2")).connect();
  try {
    let err: unknown = null;
    await other.request("mr.lab.n-1.cmd.ping", "", { timeout: 3000 }).catch((e) => (err = e));
    assert(err instanceof Error, "refused");
    const cause = (err as Error).cause ?? err;
    assert(cause instanceof errors.PermissionViolationError, `refused by permissions: ${cause}`);
  } finally {
    await other.close();
  }
  const still = await request(nc, "mr.lab.n-1.cmd.ping");
  assertEquals(still.pong, true, "the daemon still answers");
  assertEquals(await node.stop(), 0);
});
