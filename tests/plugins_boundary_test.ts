// Hostile tests of the host-function boundary through the sandbox (the agent runs in the
// sandbox host process; host functions are answered here): oversized payloads per host
// function, the state quota, priorities, forged log keys and log floods.
import { assert, assertEquals } from "@std/assert";
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { BoundaryLimits as L } from "../src/plugins/mod.ts";
import { compileWat, setupSandbox } from "./helpers/wat.ts";

type Reply = Record<string, unknown> & { error?: { code: string; message: string } };
const limits = limitsSchema.parse({ fuel: 1_000_000_000, timeout_ms: 20_000, memory_mb: 32 });
const grants = grantsSchema.parse({ events: true, metrics: true, submit: ["orders"] });
const pad = (n: number) => "x".repeat(n);

async function load(t: Awaited<ReturnType<typeof setupSandbox>>, name = "boundary") {
  return await t.sandbox.load(await compileWat("boundary"), { name, grants, limits });
}

Deno.test("boundary - every size-limited host function refuses an oversized payload with payload_too_large; the next call works", async () => {
  await using t = await setupSandbox();
  const p = await load(t);
  const cases: [string, unknown][] = [
    ["mr_event", { type: "big", data: { pad: pad(L.MAX_EVENT_DATA_BYTES) } }],
    ["mr_submit", { subject: "orders", payload: { pad: pad(L.MAX_SUBMIT_PAYLOAD_BYTES) } }],
    ["mr_metric", { name: "m", value: 1, labels: { l: pad(L.MAX_METRIC_BYTES) } }],
    [
      "mr_metric",
      {
        name: "m",
        value: 1,
        labels: Object.fromEntries(
          Array.from({ length: L.MAX_METRIC_LABELS + 1 }, (_, i) => [`k${i}`, "v"]),
        ),
      },
    ],
    ["mr_transition", { from: "a", to: "b", reason: pad(L.MAX_TRANSITION_BYTES) }],
    ["mr_state_put", { key: "k", value: pad(L.MAX_STATE_VALUE_BYTES) }],
    ["mr_state_put", { key: pad(L.MAX_STATE_KEY_BYTES + 1), value: 1 }],
    ["mr_log", { msg: "m", fields: { pad: pad(L.MAX_LOG_FIELDS_BYTES) } }],
  ];
  for (const [fn, input] of cases) {
    const r = await p.callJson<Reply>(fn, input);
    assertEquals(r.error?.code, "payload_too_large", `${fn}: ${JSON.stringify(r).slice(0, 200)}`);
    assert(/more than|limit/.test(r.error!.message), r.error!.message);
  }
  // nothing reached the services
  assertEquals(t.lines.length, 0, t.lines.join("\n"));
  // just under the limits everything works
  const ok = await p.callJson<Reply>("mr_event", { type: "fits", data: pad(1000) });
  assert(typeof ok.id === "string", JSON.stringify(ok));
  const s = await p.callJson<Reply>("mr_submit", { subject: "orders", payload: pad(60_000) });
  assert(typeof s.id === "string", JSON.stringify(s).slice(0, 200));
  assertEquals(await p.callJson("mr_state_put", { key: "k", value: pad(60_000) }), {});
  assertEquals(t.lines.length, 2);
});

Deno.test("boundary - an input over the host-call input limit is refused before parsing", async () => {
  await using t = await setupSandbox();
  const p = await load(t);
  const r = await p.callJson<Reply>("mr_state_put", {
    key: "k",
    value: pad(L.MAX_HOST_INPUT_BYTES + 10),
  });
  assertEquals(r.error?.code, "payload_too_large");
  assertEquals(await p.callJson("mr_state_get", { key: "k" }), { value: null });
});

Deno.test("boundary - mr_state_put has a per-agent key quota; overwrites and deletes still work; other agents are unaffected", async () => {
  await using t = await setupSandbox();
  const p = await load(t, "hoarder");
  for (let i = 0; i < L.STATE_QUOTA_KEYS; i++) {
    const r = await p.callJson<Reply>("mr_state_put", { key: `k${i}`, value: i });
    assertEquals(r, {}, `key ${i}`);
  }
  const over = await p.callJson<Reply>("mr_state_put", { key: "one-more", value: 1 });
  assertEquals(over.error?.code, "quota_exceeded");
  assert(over.error!.message.includes(`${L.STATE_QUOTA_KEYS} keys`), over.error!.message);
  assertEquals(await p.callJson("mr_state_put", { key: "k1", value: "new" }), {});
  assertEquals(await p.callJson("mr_state_get", { key: "k1" }), { value: "new" });
  assertEquals(await p.callJson("mr_state_put", { key: "k2", value: null }), {});
  assertEquals(await p.callJson("mr_state_put", { key: "one-more", value: 1 }), {});
  const other = await load(t, "neighbour");
  assertEquals(await other.callJson("mr_state_put", { key: "k", value: 1 }), {});
});

Deno.test("boundary - mr_state_put has a per-agent byte quota", async () => {
  await using t = await setupSandbox();
  const p = await load(t, "bytes");
  const value = pad(60_000);
  const fits = Math.floor(L.STATE_QUOTA_BYTES / 60_010);
  for (let i = 0; i < fits; i++) {
    assertEquals(await p.callJson("mr_state_put", { key: `b${i}`, value }), {}, `value ${i}`);
  }
  const r = await p.callJson<Reply>("mr_state_put", { key: "last", value });
  assertEquals(r.error?.code, "quota_exceeded");
  assertEquals(await p.callJson("mr_state_get", { key: "last" }), { value: null });
});

Deno.test("boundary - an agent submitting at priority 0 or 1 is clamped below lifecycle events", async () => {
  await using t = await setupSandbox();
  const p = await load(t);
  for (const priority of [0, 1, 2, 4]) {
    const r = await p.callJson<Reply>("mr_submit", { subject: "orders", payload: {}, priority });
    assertEquals(r.priority, Math.max(L.AGENT_MIN_PRIORITY, priority), JSON.stringify(r));
  }
  const sent = t.lines.map((l) => JSON.parse(l)).map((l) => l.priority ?? l.submit?.priority);
  assertEquals(sent, [2, 2, 2, 4], t.lines.join("\n"));
  const bad = await p.callJson<Reply>("mr_submit", { subject: "orders", priority: -1 });
  assertEquals(bad.error?.code, "invalid_input");
  assert(bad.error!.message.includes("priority"), bad.error!.message);
});

Deno.test("boundary - an agent cannot forge core log keys, an audit line or another agent's line", async () => {
  await using t = await setupSandbox();
  const p = await load(t, "forger");
  t.logs.length = 0;
  const r = await p.callJson<Reply>("mr_log", {
    level: "warn",
    msg: "capability denied",
    fields: {
      ts: "1999-01-01T00:00:00Z",
      level: "error",
      msg: "forged",
      agent: "victim",
      audit: true,
      host_function: "mr_exec",
    },
  });
  assertEquals(r, {});
  const lines = t.logs.map((l) => JSON.parse(l)).filter((l) => l.fields?.agent === "victim");
  assertEquals(lines.length, 1, t.logs.join("\n"));
  const line = lines[0];
  assertEquals(line.agent, "forger");
  assertEquals(line.level, "warn");
  assertEquals(line.msg, "capability denied");
  assertEquals(line.audit, undefined, "not an audit line");
  assert(line.ts !== "1999-01-01T00:00:00Z");
  assertEquals(line.fields.audit, true, "the agent's fields are kept, nested");
  assertEquals(t.logs.map((l) => JSON.parse(l)).filter((l) => l.audit === true).length, 0);
  // an unknown level becomes info; the message is truncated at its limit
  await p.callJson("mr_log", { level: "audit", msg: pad(L.MAX_LOG_MSG_BYTES + 100) });
  const last = JSON.parse(t.logs.at(-1)!);
  assertEquals(last.level, "info");
  assert(last.msg.length <= L.MAX_LOG_MSG_BYTES + 1, String(last.msg.length));
});

Deno.test("boundary - a log flood is cut at the agent's rate, counted, and other agents still log", async () => {
  await using t = await setupSandbox();
  const p = await load(t, "flooder");
  const quiet = await load(t, "quiet");
  t.logs.length = 0;
  let limited = 0;
  const started = performance.now();
  const N = L.LOG_BURST_LINES + 300;
  for (let i = 0; i < N; i++) {
    const r = await p.callJson<Reply>("mr_log", { msg: `line ${i}` });
    if (r.error) {
      assertEquals(r.error.code, "rate_limited");
      limited++;
    }
  }
  const secs = (performance.now() - started) / 1000;
  const written = t.logs.filter((l) => JSON.parse(l).agent === "flooder").length;
  assertEquals(written + limited, N);
  assert(limited > 0, "the flood was limited");
  assert(
    written <= L.LOG_BURST_LINES + Math.ceil(secs * L.LOG_LINES_PER_SEC) + 1,
    `${written} lines in ${secs.toFixed(2)} s`,
  );
  assertEquals(await quiet.callJson("mr_log", { msg: "still here" }), {});
  assert(t.logs.some((l) => JSON.parse(l).agent === "quiet"));
});

Deno.test("boundary - with a spool full of lifecycle events an agent's priority-0 submit is refused (unavailable) and evicts nothing", async () => {
  const { createSandbox } = await import("../src/plugins/mod.ts");
  const { createLogger } = await import("../src/log/logger.ts");
  const { openSpool } = await import("../src/spool/mod.ts");
  const { createOutbox } = await import("../src/events/mod.ts");
  const { createDaemonServices } = await import("../src/agents/host_services.ts");
  const dir = await Deno.makeTempDir({ prefix: "mr-full-" });
  const spool = openSpool(":memory:", { maxBytes: 16 * 1024 });
  const config = { customer: "acme", site: "s1", node: "n1" };
  const outbox = createOutbox({ spool, config });
  const logger = createLogger({ level: "silent" });
  const ctx = {
    config,
    logger,
    outbox,
    natsNow: () => null,
    module: () => undefined,
    facts: () => ({}),
  } as unknown as Parameters<typeof createDaemonServices>[0];
  const sandbox = await createSandbox({
    stateDir: dir,
    services: createDaemonServices(ctx),
    logger,
  });
  try {
    // fill the spool with lifecycle events (priority 1)
    const lifecycle: string[] = [];
    for (let i = 0; spool.stats().bytes < 15 * 1024; i++) {
      lifecycle.push(
        await outbox.event("lifecycle", "alive", { i, pad: pad(500) }, { priority: 1 }),
      );
    }
    const p = await sandbox.load(await compileWat("boundary"), { name: "greedy", grants, limits });
    for (const priority of [0, 4]) {
      const r = await p.callJson<Reply>("mr_submit", {
        subject: "orders",
        payload: { pad: pad(2000) },
        priority,
      });
      assertEquals(r.error?.code, "unavailable", JSON.stringify(r).slice(0, 300));
      assert(r.error!.message.includes("higher-priority"), r.error!.message);
    }
    const ev = await p.callJson<Reply>("mr_event", { type: "big", data: pad(2000) });
    assertEquals(ev.error?.code, "unavailable");
    // every lifecycle event is still queued, at priority 1
    const queued = spool.next(10_000);
    assertEquals(queued.map((m) => m.id), lifecycle);
    assert(queued.every((m) => m.priority === 1));
    assert(spool.stats().dropped >= 3, "the refusals are counted");
  } finally {
    await sandbox.close();
    spool.close();
    await Deno.remove(dir, { recursive: true });
  }
});
