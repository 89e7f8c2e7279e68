// The console's HTTP boundary, attacked: no session, forged and expired sessions, missing
// CSRF, bad Host, malformed filters, unknown nodes, oversized and malformed bodies, and
// /metrics without its token. Each gets a clear 4xx; the console keeps serving. Fan-out
// outcomes are classified per target (answered, offline, timed out, denied). /metrics is
// validated with promtool.
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { startNatsServer } from "./helpers/nats_server.ts";
import { simulateMetrics, simulateNodes } from "./helpers/sim_fleet.ts";
import { ensureStreams } from "../provisioner/streams.ts";
import { startConsole } from "../provisioner/console/mod.ts";

async function promtool(text: string): Promise<{ code: number; out: string }> {
  const p = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const o = await p.output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

/** fetch() will not send a foreign Host header: speak HTTP/1.1 by hand. */
async function rawGet(base: string, path: string, host: string): Promise<string> {
  const url = new URL(base);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    return new TextDecoder().decode(buf.subarray(0, n ?? 0));
  } finally {
    conn.close();
  }
}

Deno.test("console - hostile HTTP input is refused clearly and the console keeps serving", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  await ensureStreams(nc);
  await simulateNodes(nc, "acme", [{ site: "s1", node: "n1" }, { site: "s1", node: "n2" }]);
  await simulateMetrics(nc, { site: "s1", node: "n1" }, "mr_host_cpu_percent", 120, 30_000);
  // n1 answers ping; n2 is "offline" (nobody listens); slow never answers; denier refuses
  nc.subscribe("mr.s1.n1.cmd.*", {
    callback: (_e, m) => void m.respond(JSON.stringify({ pong: true, node: "n1" })),
  });
  nc.subscribe("mr.s1.slow.cmd.*", { callback: () => {} });
  nc.subscribe("mr.s1.denier.cmd.*", {
    callback: (_e, m) =>
      void m.respond(JSON.stringify({ error: { code: "capability_denied", message: "no" } })),
  });
  const lines: string[] = [];
  await using c = await startConsole({
    connections: new Map([["acme", nc]]),
    port: 0,
    sessionIdleMs: 1_500,
    log: (l) => lines.push(l),
  });
  try {
    const u = (p: string) => `${c.url}${p}`;
    const body = async (r: Response) => {
      const t = await r.text();
      try {
        return JSON.parse(t);
      } catch {
        return t;
      }
    };

    // no session: API 401 JSON, page 401 HTML, action refused
    let r = await fetch(u("/api/fleet"));
    assertEquals(r.status, 401);
    assertEquals((await body(r)).error.code, "unauthorized");
    r = await fetch(u("/fleet"));
    assertEquals(r.status, 401);
    assertStringIncludes(await r.text(), "Not logged in");
    r = await fetch(u("/api/action"), { method: "POST", body: "{}" });
    assertEquals(r.status, 401);
    await r.body?.cancel();
    // a forged cookie and a wrong login token
    r = await fetch(u("/api/fleet"), { headers: { cookie: "mr_console=forged" } });
    assertEquals(r.status, 401);
    await r.body?.cancel();
    r = await fetch(u("/login?token=wrong"), { redirect: "manual" });
    assertEquals(r.status, 401);
    await r.body?.cancel();
    // a Host header other than loopback (DNS rebinding)
    assertMatch(await rawGet(c.url, "/api/fleet", "evil.example"), /^HTTP\/1\.1 421/);

    // log in: HttpOnly SameSite=Strict cookie, open redirect refused
    r = await fetch(`${c.loginUrl}&next=//evil.example/x`, { redirect: "manual" });
    assertEquals(r.status, 303);
    assertEquals(r.headers.get("location"), "/fleet");
    const setCookie = r.headers.get("set-cookie") ?? "";
    assertMatch(setCookie, /HttpOnly/);
    assertMatch(setCookie, /SameSite=Strict/);
    const cookie = setCookie.split(";")[0]!;
    const auth = { cookie };
    const session = await body(await fetch(u("/api/session"), { headers: auth }));
    assert(session.csrf.length >= 32);

    // the fleet, and malformed filters naming the parameter
    const fleet = await body(await fetch(u("/api/fleet?sort=node&dir=desc"), { headers: auth }));
    assertEquals(fleet.counts.total, 2);
    assertEquals(fleet.nodes.map((n: { node: string }) => n.node), ["n2", "n1"]);
    for (
      const [q, field] of [["status=bogus", "status"], ["sort=password", "sort"], [
        `q=${"x".repeat(300)}`,
        "q",
      ], ["nope=1", "nope"]]
    ) {
      r = await fetch(u(`/api/fleet?${q}`), { headers: auth });
      assertEquals(r.status, 400, q);
      assertStringIncludes((await body(r)).error.message, field!);
    }
    r = await fetch(u("/api/events/stream?type=%3Cscript%3E"), { headers: auth });
    assertEquals(r.status, 400);
    assertStringIncludes((await body(r)).error.message, "type");

    // unknown node, bad path, bad range
    r = await fetch(u("/api/node/acme/s1/ghost"), { headers: auth });
    assertEquals(r.status, 404);
    assertStringIncludes((await body(r)).error.message, "ghost");
    r = await fetch(u("/api/node/acme/s1/N1!"), { headers: auth });
    assertEquals(r.status, 400);
    await r.body?.cancel();
    r = await fetch(u("/api/node/acme/s1/n1/metrics?range=1y"), { headers: auth });
    assertEquals(r.status, 400);
    assertStringIncludes((await body(r)).error.message, "range");
    const m = await body(
      await fetch(u("/api/node/acme/s1/n1/metrics?range=24h"), { headers: auth }),
    );
    assertEquals(m.series.length, 1);
    assert(m.series[0].t.length > 10, "24 h of 30 s samples, bucketed");
    r = await fetch(u("/node/acme/s1/ghost"), { headers: auth });
    assertEquals(r.status, 200, "the page loads; the API says the node is unknown");
    await r.body?.cancel();

    // actions: CSRF missing / wrong, oversized, malformed, out-of-schema
    const action = (b: string, headers: Record<string, string> = {}) =>
      fetch(u("/api/action"), { method: "POST", headers: { ...auth, ...headers }, body: b });
    const ping = JSON.stringify({
      action: "ping",
      targets: [{ customer: "acme", site: "s1", node: "n1" }],
    });
    r = await action(ping);
    assertEquals(r.status, 403);
    assertEquals((await body(r)).error.code, "csrf");
    r = await action(ping, { "x-csrf-token": "A".repeat(43) });
    assertEquals(r.status, 403);
    await r.body?.cancel();
    const csrf = { "x-csrf-token": session.csrf };
    r = await action("x".repeat(70_000), csrf);
    assertEquals(r.status, 413);
    await r.body?.cancel();
    r = await action("{not json", csrf);
    assertEquals(r.status, 400);
    assertStringIncludes((await body(r)).error.message, "not JSON");
    r = await action(JSON.stringify({ action: "rm", targets: [] }), csrf);
    assertEquals(r.status, 400);
    await r.body?.cancel();
    r = await action(
      JSON.stringify({ action: "ping", targets: [{ customer: "acme", site: "s1", node: "../x" }] }),
      csrf,
    );
    assertEquals(r.status, 400);
    assertStringIncludes((await body(r)).error.message, "targets.0.node");
    r = await action(
      JSON.stringify({ action: "ping", targets: [{ customer: "globex", site: "s1", node: "n1" }] }),
      csrf,
    );
    assertEquals(r.status, 404);
    await r.body?.cancel();

    // fan-out: one outcome per target
    const fan = await body(
      await action(
        JSON.stringify({
          action: "ping",
          timeout_ms: 500,
          targets: ["n1", "n2", "slow", "denier"].map((node) => ({
            customer: "acme",
            site: "s1",
            node,
          })),
        }),
        csrf,
      ),
    );
    const outcome = Object.fromEntries(
      fan.results.map((x: { node: string; outcome: string }) => [x.node, x.outcome]),
    );
    assertEquals(outcome, { n1: "answered", n2: "offline", slow: "timed_out", denier: "denied" });
    assertEquals(fan.results[0].reply.pong, true);
    assert(
      lines.some((l) => l.includes('"console.action.ping"') && l.includes('"audit":true')),
      "actions are audited",
    );

    // /metrics: its own token, valid exposition format
    r = await fetch(u("/metrics"));
    assertEquals(r.status, 401);
    await r.body?.cancel();
    r = await fetch(u("/metrics"), { headers: { authorization: `Bearer ${session.csrf}` } });
    assertEquals(r.status, 401, "the CSRF token is not the scrape token");
    await r.body?.cancel();
    r = await fetch(u("/metrics"), { headers: { authorization: `Bearer ${c.metricsToken}` } });
    assertEquals(r.status, 200);
    const text = await r.text();
    assertStringIncludes(text, 'mr_node_up{customer="acme",site="s1",node="n1"} 1');
    assertStringIncludes(
      text,
      'mr_node_health{customer="acme",site="s1",node="n1",status="healthy"} 1',
    );
    assertStringIncludes(text, "mr_host_cpu_percent{");
    const pt = await promtool(text);
    assertEquals(pt.code, 0, pt.out);

    // an expired session gets its own message; others are unaffected
    const other = (await fetch(c.loginUrl, { redirect: "manual" })).headers.get("set-cookie")!
      .split(";")[0]!;
    await new Promise((res) => setTimeout(res, 1_700));
    r = await fetch(u("/api/fleet"), { headers: auth });
    assertEquals(r.status, 401);
    assertEquals((await body(r)).error.code, "session_expired");
    r = await fetch(u("/fleet"), { headers: auth });
    assertStringIncludes(await r.text(), "Session expired");
    // still serving: a fresh session works
    const fresh = (await fetch(c.loginUrl, { redirect: "manual" })).headers.get("set-cookie")!
      .split(";")[0]!;
    assert(other !== fresh);
    r = await fetch(u("/api/fleet"), { headers: { cookie: fresh } });
    assertEquals(r.status, 200);
    assertEquals((await body(r)).counts.total, 2);
  } finally {
    await c.close();
    await nc.close();
  }
});
