// The example agents (built from source by scripts/build_examples.ts in AssemblyScript, C
// and Rust) driven through the real sandbox with a recording HostServices, and through
// the CLI. Grants are the minimal ones from each example's README; narrowing them is refused.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { join } from "node:path";
import { createSandbox } from "../src/plugins/mod.ts";
import { silentLogger } from "../src/log/logger.ts";
import type { HostServices } from "../src/host/services.ts";
import { type Grants, grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { isSandboxError } from "../src/plugins/types.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const enc = new TextEncoder();

// build (no-op when up to date)
const build = await new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", join(ROOT, "scripts/build_examples.ts")],
  stdout: "null",
  stderr: "piped",
}).output();
if (!build.success) throw new Error(new TextDecoder().decode(build.stderr));
const wasm = (name: string) => Deno.readFile(join(ROOT, "wasm-examples/dist", `${name}.wasm`));

interface Rec {
  events: { type: string; data: unknown }[];
  metrics: { name: string; value: number; labels?: Record<string, string> }[];
  transitions: { from: string; to: string; reason?: string }[];
  governor: string[];
}

function recorder(
  facts: () => Record<string, unknown> = () => ({}),
): { rec: Rec; services: HostServices } {
  const rec: Rec = { events: [], metrics: [], transitions: [], governor: [] };
  const services: HostServices = {
    event: (_a, i) => {
      rec.events.push({ type: i.type, data: i.data });
      return Promise.resolve({ id: String(rec.events.length) });
    },
    submit: () => Promise.resolve({ id: "s" }),
    metric: (_a, i) => {
      rec.metrics.push(i);
      return Promise.resolve();
    },
    transition: (_a, i) => {
      rec.transitions.push(i);
      return Promise.resolve({ id: "t" });
    },
    kvGet: () => Promise.resolve(null),
    governor: (_a, i) => {
      rec.governor.push(`${i.action}:${i.name}`);
      return Promise.resolve(i.action === "acquire" ? { held: true, seq: 1 } : { held: false });
    },
    isLeader: () => Promise.resolve(true),
    facts: () => Promise.resolve(facts()),
  };
  return { rec, services };
}

async function withAgent<T>(
  name: string,
  grants: unknown,
  services: HostServices,
  fn: (call: (f: string, input?: unknown) => Promise<unknown>) => Promise<T>,
  stateDir?: string,
): Promise<T> {
  const dir = stateDir ?? await Deno.makeTempDir();
  const sb = await createSandbox({ stateDir: dir, services, logger: silentLogger });
  try {
    const plugin = await sb.load(await wasm(name), {
      name,
      grants: grantsSchema.parse(grants) as Grants,
      limits: limitsSchema.parse({}),
    });
    return await fn(async (f, input) => {
      const out = await plugin.call(f, enc.encode(JSON.stringify(input ?? null)));
      const text = new TextDecoder().decode(out);
      return text ? JSON.parse(text) : null;
    });
  } finally {
    await sb.close();
    if (!stateDir) await Deno.remove(dir, { recursive: true });
  }
}

const reconcileInput = {
  desired: null,
  facts: {},
  state: {},
  trigger: { kind: "interval", at: "" },
};

Deno.test("examples - every example describes itself with ABI 1", async () => {
  const grants: Record<string, unknown> = {
    "http-probe": { http: ["127.0.0.1:1"], metrics: true, events: true },
    "exporter-scrape": { http: ["127.0.0.1:1"], metrics: true },
    "threshold-check": { facts: true, events: true },
    "service-keeper": { exec: [["true"]], events: true, governors: ["restarts"] },
  };
  for (const [name, g] of Object.entries(grants)) {
    const d = await withAgent(name, g, recorder().services, (call) => call("mr_describe"));
    assertEquals((d as { name: string; abi: number }).name, name);
    assertEquals((d as { abi: number }).abi, 1);
  }
});

Deno.test("examples - service-keeper (Rust) restarts a stopped service under a governor and reports transitions", async () => {
  const dir = await Deno.makeTempDir();
  const flag = join(dir, "service-running");
  const check = ["test", "-f", flag];
  const restart = ["touch", flag];
  const grants = { exec: [check, restart], events: true, governors: ["restarts"] };
  const config = { service: "demo", check, restart, governor: "restarts" };
  try {
    const { rec, services } = recorder();
    await withAgent("service-keeper", grants, services, async (call) => {
      await call("mr_init", config);
      const r1 = await call("mr_reconcile", reconcileInput) as { status: string };
      assertEquals(r1.status, "changed");
      assertEquals(rec.transitions.map((t) => `${t.from}>${t.to}`), [
        "unknown>stopped",
        "stopped>running",
      ]);
      assertEquals(rec.governor, ["acquire:restarts", "release:restarts"]);
      assertEquals(rec.events[0]!.type, "restart.attempted");
      await Deno.stat(flag); // the restart command really ran
      const r2 = await call("mr_reconcile", reconcileInput) as { status: string };
      assertEquals(r2.status, "ok");
      assertEquals(rec.transitions.length, 2);
    });
    // narrowed grant: the restart argv is not granted → refused at run time, reported degraded
    await Deno.remove(flag);
    const narrow = recorder();
    await withAgent(
      "service-keeper",
      { exec: [check], events: true, governors: ["restarts"] },
      narrow.services,
      async (call) => {
        await call("mr_init", config);
        const r = await call("mr_reconcile", reconcileInput) as { status: string };
        assertEquals(r.status, "degraded");
        assertEquals((narrow.rec.events[0]!.data as { code: number }).code, -1);
      },
    );
    // without the governors grant the module is refused at load
    let refused = "";
    try {
      await withAgent(
        "service-keeper",
        { exec: [check, restart], events: true },
        narrow.services,
        () => Promise.resolve(),
      );
    } catch (err) {
      if (isSandboxError(err)) refused = err.code;
    }
    assertEquals(refused, "capability_denied");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("examples - threshold-check (C) raises, remediates and clears alarms; alarm state survives a reload", async () => {
  let mem = 95;
  const { rec, services } = recorder(() => ({
    memory: { used_percent: mem },
    cpu: { load: { "1m": 0.5 } },
    disks: [{ mount: "/", use_percent: 40 }],
  }));
  const state = await Deno.makeTempDir();
  try {
    const config = { memory_percent: 90, load1: 4, disk_percent: 90 };
    const grants = { facts: true, events: true };
    await withAgent("threshold-check", grants, services, async (call) => {
      await call("mr_init", config);
      const r = await call("mr_reconcile", reconcileInput) as { status: string };
      assertEquals(r.status, "degraded");
      assertEquals(rec.events.map((e) => e.type), ["alarm.raised", "remediate"]);
      assertEquals((rec.events[0]!.data as { check: string; value: number }).check, "memory");
      assertEquals((rec.events[0]!.data as { value: number }).value, 95);
      await call("mr_reconcile", reconcileInput);
      assertEquals(rec.events.length, 2, "no repeat while the alarm stays raised");
    }, state);
    mem = 50;
    await withAgent("threshold-check", grants, services, async (call) => {
      await call("mr_init", config);
      const r = await call("mr_reconcile", reconcileInput) as { status: string };
      assertEquals(r.status, "ok");
      assertEquals(rec.events.at(-1)!.type, "alarm.cleared");
    }, state);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("examples - http-probe (AssemblyScript) measures URLs, reports down/up; a narrowed grant is refused", async () => {
  let healthy = false;
  const srv = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/ok") return new Response("fine");
    return new Response("nope", { status: healthy ? 200 : 503 });
  });
  const base = `http://127.0.0.1:${srv.addr.port}`;
  try {
    const { rec, services } = recorder();
    const grants = { http: [`127.0.0.1:${srv.addr.port}`], metrics: true, events: true };
    await withAgent("http-probe", grants, services, async (call) => {
      await call("mr_init", { urls: [`${base}/ok`, `${base}/flaky`] });
      const r1 = await call("mr_reconcile", reconcileInput) as { status: string; message: string };
      assertEquals(r1.status, "degraded");
      const up = rec.metrics.filter((m) => m.name === "probe_up");
      assertEquals(up.map((m) => m.value), [1, 0]);
      assertEquals(up[0]!.labels?.url, `${base}/ok`);
      assert(rec.metrics.some((m) => m.name === "probe_latency_ms" && m.value >= 0));
      assertEquals(rec.events.map((e) => e.type), ["probe.down"]);
      healthy = true;
      const r2 = await call("mr_reconcile", reconcileInput) as { status: string };
      assertEquals(r2.status, "ok");
      assertEquals(rec.events.map((e) => e.type), ["probe.down", "probe.up"]);
    });
    // the grant names another port: the request is refused at run time and reported
    const other = recorder();
    await withAgent(
      "http-probe",
      { http: ["127.0.0.1:1"], metrics: true, events: true },
      other.services,
      async (call) => {
        await call("mr_init", { urls: [`${base}/ok`] });
        await call("mr_reconcile", reconcileInput);
        assertEquals(other.rec.metrics[0]!.value, 0);
        assertEquals((other.rec.events[0]!.data as { reason: string }).reason, "capability_denied");
      },
    );
    // no http grant at all: refused at load
    let refused = "";
    try {
      await withAgent(
        "http-probe",
        { metrics: true, events: true },
        other.services,
        () => Promise.resolve(),
      );
    } catch (err) {
      if (isSandboxError(err)) refused = err.code;
    }
    assertEquals(refused, "capability_denied");
  } finally {
    await srv.shutdown();
  }
});

Deno.test("examples - exporter-scrape (AssemblyScript) forwards the included samples with their labels", async () => {
  const srv = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () =>
    new Response(
      "# TYPE app_requests_total counter\n" +
        'app_requests_total{code="200",path="/a \\"b\\""} 42\n' +
        "app_queue_depth 3.5\n" +
        "go_goroutines 12\n" +
        'app_broken{x="1"} notanumber\n',
    ));
  const url = `http://127.0.0.1:${srv.addr.port}/metrics`;
  try {
    const { rec, services } = recorder();
    await withAgent(
      "exporter-scrape",
      { http: [`127.0.0.1:${srv.addr.port}`], metrics: true },
      services,
      async (call) => {
        await call("mr_init", { url, include: ["app_"] });
        const r = await call("mr_reconcile", reconcileInput) as { status: string; message: string };
        assertEquals(r.status, "ok");
        assertMatch(r.message, /2 samples forwarded, 1 malformed/);
      },
    );
    assertEquals(rec.metrics.map((m) => m.name), ["app_requests_total", "app_queue_depth"]);
    assertEquals(rec.metrics[0]!.value, 42);
    assertEquals(rec.metrics[0]!.labels, { code: "200", path: '/a "b"', exporter: url });
    assertEquals(rec.metrics[1]!.value, 3.5);
  } finally {
    await srv.shutdown();
  }
});

Deno.test("examples - plugin run drives service-keeper through the CLI; a narrowed grant exits 3", async () => {
  await using tmp = {
    path: await Deno.makeTempDir(),
    [Symbol.asyncDispose]() {
      return Deno.remove(this.path, { recursive: true });
    },
  };
  const stateDir = tmp.path;
  const run = (grant: string) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "main.ts"),
        "plugin",
        "run",
        "builtin:service-keeper",
        "--config",
        '{"service":"x","check":["true"],"governor":"restarts"}',
        "--grant",
        grant,
        "--json",
        "--state-dir",
        stateDir,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
  const ok = await run('{"exec":[["true"]],"events":true,"governors":["restarts"]}');
  assertEquals(ok.code, 0, new TextDecoder().decode(ok.stderr));
  const lines = new TextDecoder().decode(ok.stdout).trim().split("\n").map((l) => JSON.parse(l));
  assertEquals(lines[0].status, "changed");
  assert(lines.some((l) => l.kind === "transition" && l.to === "running"));
  const narrowed = await run('{"exec":[["true"]],"events":true}');
  assertEquals(narrowed.code, 3);
  const last = new TextDecoder().decode(narrowed.stderr).trim().split("\n").at(-1)!;
  assertEquals(JSON.parse(last).error.code, "capability_denied");
});
