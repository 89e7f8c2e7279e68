import { assert, assertEquals, assertMatch } from "@std/assert";
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { globToRegExp, kvKeyAllowed } from "../src/plugins/mod.ts";
import { compileWat, setupSandbox } from "./helpers/wat.ts";

const limits = limitsSchema.parse({ fuel: 5_000_000, timeout_ms: 3_000, memory_mb: 1 });
type Reply = Record<string, unknown> & { error?: { code: string; message: string } };

Deno.test("host - mr_file_read of allowed/../secret and of an escaping symlink is refused", async () => {
  await using t = await setupSandbox();
  const root = await Deno.makeTempDir({ prefix: "mr-files-" });
  try {
    await Deno.mkdir(`${root}/allowed/sub`, { recursive: true });
    await Deno.writeTextFile(`${root}/allowed/sub/ok.txt`, "fine");
    await Deno.writeTextFile(`${root}/secret`, "top secret");
    await Deno.symlink(`${root}/secret`, `${root}/allowed/link`);
    const p = await t.sandbox.load(await compileWat("files"), {
      name: "files",
      grants: grantsSchema.parse({
        files: { read: [`${root}/allowed/**`], write: [`${root}/allowed/*.log`] },
      }),
      limits,
    });
    const ok = await p.callJson<Reply>("mr_file_read", { path: `${root}/allowed/sub/ok.txt` });
    assertEquals(ok, { content: "fine" });
    for (const path of [`${root}/allowed/../secret`, `${root}/allowed/link`, `${root}/secret`]) {
      const r = await p.callJson<Reply>("mr_file_read", { path });
      assertEquals(r.error?.code, "capability_denied", path);
      assert(!JSON.stringify(r).includes("top secret"));
    }
    const audits = t.logs.map((l) => JSON.parse(l)).filter((l) => l.audit === true);
    assertEquals(audits.length, 3);
    assertEquals(audits[0].agent, "files");
    assertEquals(audits[0].host_function, "mr_file_read");
    // writes: a new file in a granted pattern works, others are refused
    const w = await p.callJson<Reply>("mr_file_write", {
      path: `${root}/allowed/run.log`,
      content: "line\n",
    });
    assertEquals(w, { bytes: 5 });
    assertEquals(await Deno.readTextFile(`${root}/allowed/run.log`), "line\n");
    const denied = await p.callJson<Reply>("mr_file_write", {
      path: `${root}/allowed/sub/x.log`,
      content: "no",
    });
    assertEquals(denied.error?.code, "capability_denied");
    const missing = await p.callJson<Reply>("mr_file_read", { path: `${root}/allowed/none.txt` });
    assertEquals(missing.error?.code, "not_found");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("host - mr_exec runs only an exactly granted argv", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("exec"), {
    name: "exec",
    grants: grantsSchema.parse({ exec: [["echo", "hello"], ["sh", "-c", "exit 3"]] }),
    limits,
  });
  assertEquals(await p.callJson("mr_exec", { argv: ["echo", "hello"] }), {
    code: 0,
    stdout: "hello\n",
    stderr: "",
  });
  assertEquals((await p.callJson<Reply>("mr_exec", { argv: ["sh", "-c", "exit 3"] })).code, 3);
  for (const argv of [["echo", "hello", "world"], ["echo"], ["rm", "-rf", "/"]]) {
    const r = await p.callJson<Reply>("mr_exec", { argv });
    assertEquals(r.error?.code, "capability_denied", JSON.stringify(argv));
  }
  const bad = await p.callJson<Reply>("mr_exec", { argv: "echo hello" });
  assertEquals(bad.error?.code, "invalid_input");
  const notJson = new TextDecoder().decode(await p.call("mr_exec", "{nope"));
  assertEquals(JSON.parse(notJson).error.code, "invalid_input");
});

Deno.test("host - mr_state_put/get persist across close and a new sandbox on the same dir", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mr-state-" });
  try {
    const { createSandbox, createPrintingServices } = await import("../src/plugins/mod.ts");
    const { silentLogger } = await import("../src/log/logger.ts");
    const wasm = await compileWat("state");
    const open = () =>
      createSandbox({
        stateDir: dir,
        services: createPrintingServices(() => {}),
        logger: silentLogger,
      });
    {
      await using sb = await open();
      const p = await sb.load(wasm, { name: "keeper", grants: grantsSchema.parse({}), limits });
      assertEquals(await p.callJson("mr_state_put", { key: "runs", value: { n: 41 } }), {});
      const other = await sb.load(wasm, { name: "other", grants: grantsSchema.parse({}), limits });
      assertEquals(await other.callJson("mr_state_get", { key: "runs" }), { value: null });
      await p.close();
    }
    {
      await using sb = await open();
      const p = await sb.load(wasm, { name: "keeper", grants: grantsSchema.parse({}), limits });
      assertEquals(await p.callJson("mr_state_get", { key: "runs" }), { value: { n: 41 } });
      assertEquals(await p.callJson("mr_state_put", { key: "runs", value: null }), {});
      assertEquals(await p.callJson("mr_state_get", { key: "runs" }), { value: null });
    }
    const st = await Deno.stat(`${dir}/agent-state.sqlite`);
    assert(st.isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("host - network-plane functions reach HostServices after grant checks", async () => {
  await using t = await setupSandbox();
  const p = await t.sandbox.load(await compileWat("network"), {
    name: "net",
    grants: grantsSchema.parse({
      events: true,
      facts: true,
      metrics: true,
      submit: ["orders"],
      kv_read: ["shared.*"],
      governors: ["rollout"],
    }),
    limits,
  });
  const ev = await p.callJson<Reply>("mr_event", { type: "disk.full", data: { pct: 97 } });
  assertMatch(String(ev.id), /^[0-9A-Z]{26}$/);
  assertEquals(JSON.parse(t.lines[0]!), {
    kind: "event",
    agent: "net",
    id: ev.id,
    type: "disk.full",
    data: { pct: 97 },
  });
  assertMatch(
    String((await p.callJson<Reply>("mr_submit", { subject: "orders", payload: [1] })).id),
    /^[0-9A-Z]{26}$/,
  );
  const sub = await p.callJson<Reply>("mr_submit", { subject: "billing", payload: 1 });
  assertEquals(sub.error?.code, "capability_denied");
  assertEquals(await p.callJson("mr_kv_get", { key: "shared.limits" }), {
    value: null,
    revision: 0,
  });
  assertEquals(
    (await p.callJson<Reply>("mr_kv_get", { key: "private.secret" })).error?.code,
    "capability_denied",
  );
  assertEquals(await p.callJson("mr_governor", { name: "rollout", action: "acquire" }), {
    held: true,
    seq: 1,
  });
  assertEquals(
    (await p.callJson<Reply>("mr_governor", { name: "other", action: "acquire" })).error?.code,
    "capability_denied",
  );
  assertEquals(await p.callJson("mr_is_leader", {}), { leader: true });
  assertEquals(await p.callJson("mr_metric", { name: "probe_ms", value: 12.5 }), {});
  assertEquals(await p.callJson("mr_facts", {}), { facts: {} });
  assertEquals(await p.callJson("mr_log", { level: "warn", msg: "hello from wasm" }), {});
  const t1 = await p.callJson<Reply>("mr_transition", { from: "stopped", to: "running" });
  assertMatch(String(t1.id), /^[0-9A-Z]{26}$/);
  const log = t.logs.map((l) => JSON.parse(l)).find((l) => l.msg === "hello from wasm");
  assertEquals(log?.agent, "net");
  assertEquals(log?.level, "warn");
});

Deno.test("host - mr_http reaches only granted host:port", async () => {
  await using t = await setupSandbox();
  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen: () => {} },
    (req) => new Response(`hello ${new URL(req.url).pathname}`, { status: 201 }),
  );
  try {
    const port = server.addr.port;
    const p = await t.sandbox.load(await compileWat("http"), {
      name: "http",
      grants: grantsSchema.parse({ http: [`127.0.0.1:${port}`] }),
      limits,
    });
    const r = await p.callJson<Reply>("mr_http", { url: `http://127.0.0.1:${port}/ping` });
    assertEquals(r.status, 201);
    assertEquals(r.body, "hello /ping");
    const denied = await p.callJson<Reply>("mr_http", { url: `http://127.0.0.1:${port + 1}/` });
    assertEquals(denied.error?.code, "capability_denied");
    const denied80 = await p.callJson<Reply>("mr_http", { url: "http://127.0.0.1/" });
    assertEquals(denied80.error?.code, "capability_denied");
  } finally {
    ac.abort();
    await server.finished;
  }
});

Deno.test("host - glob and KV pattern rules", () => {
  assert(globToRegExp("/etc/nginx/**").test("/etc/nginx/conf.d/a.conf"));
  assert(globToRegExp("/etc/nginx/**").test("/etc/nginx"));
  assert(!globToRegExp("/etc/nginx/**").test("/etc/nginx2/a"));
  assert(globToRegExp("/var/*/x.log").test("/var/a/x.log"));
  assert(!globToRegExp("/var/*/x.log").test("/var/a/b/x.log"));
  assert(!globToRegExp("/var/x.log").test("/var/xxlog"));
  assert(kvKeyAllowed("shared.limits", ["shared.*"]));
  assert(!kvKeyAllowed("shared.a.b", ["shared.*"]));
  assert(kvKeyAllowed("shared.a.b", ["shared.>"]));
  assert(!kvKeyAllowed("shared", ["shared.>"]));
  assert(!kvKeyAllowed("other.a", ["shared.*"]));
});
