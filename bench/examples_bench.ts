// Example agents (issue 6): module size and mr_reconcile latency through the real sandbox.
// Prints `examples: …` lines quoted in README.
import { join } from "node:path";
import { createSandbox } from "../src/plugins/mod.ts";
import { silentLogger } from "../src/log/logger.ts";
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import type { HostServices } from "../src/host/services.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const srv = Deno.serve(
  { port: 0, hostname: "127.0.0.1", onListen() {} },
  (req) =>
    new URL(req.url).pathname === "/metrics"
      ? new Response('# TYPE app_x gauge\napp_x 1\napp_y{a="b"} 2\nother 3\n')
      : new Response("ok"),
);
const port = srv.addr.port;
const services: HostServices = {
  event: () => Promise.resolve({ id: "e" }),
  submit: () => Promise.resolve({ id: "s" }),
  metric: () => Promise.resolve(),
  transition: () => Promise.resolve({ id: "t" }),
  kvGet: () => Promise.resolve(null),
  governor: (_a, i) =>
    Promise.resolve(i.action === "acquire" ? { held: true, seq: 1 } : { held: false }),
  isLeader: () => Promise.resolve(true),
  facts: () =>
    Promise.resolve({
      memory: { used_percent: 50 },
      cpu: { load: { "1m": 1 } },
      disks: [{ use_percent: 40 }],
    }),
};
const examples: Record<string, { grants: unknown; config: unknown }> = {
  "service-keeper": {
    grants: { exec: [["true"]], events: true, governors: ["restarts"] },
    config: { service: "x", check: ["true"], governor: "restarts" },
  },
  "threshold-check": {
    grants: { facts: true, events: true },
    config: { memory_percent: 90, load1: 4, disk_percent: 90 },
  },
  "http-probe": {
    grants: { http: [`127.0.0.1:${port}`], metrics: true, events: true },
    config: { urls: [`http://127.0.0.1:${port}/health`] },
  },
  "exporter-scrape": {
    grants: { http: [`127.0.0.1:${port}`], metrics: true },
    config: { url: `http://127.0.0.1:${port}/metrics`, include: ["app_"] },
  },
};
const enc = new TextEncoder();
const input = enc.encode(
  JSON.stringify({ desired: null, facts: {}, state: {}, trigger: { kind: "interval", at: "" } }),
);
const dir = await Deno.makeTempDir();
const sb = await createSandbox({ stateDir: dir, services, logger: silentLogger });
const plugins: Record<string, Awaited<ReturnType<typeof sb.load>>> = {};
for (const [name, e] of Object.entries(examples)) {
  const bytes = await Deno.readFile(join(ROOT, "wasm-examples/dist", `${name}.wasm`));
  const p = await sb.load(bytes, {
    name,
    grants: grantsSchema.parse(e.grants),
    limits: limitsSchema.parse({}),
  });
  await p.call("mr_init", enc.encode(JSON.stringify(e.config)));
  plugins[name] = p;
  const samples: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await p.call("mr_reconcile", input);
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  console.log(
    `examples: ${name} module ${(bytes.length / 1024).toFixed(1)} KiB, mr_reconcile p50 ${
      (samples[100]! * 1000).toFixed(0)
    } µs, p99 ${(samples[198]! * 1000).toFixed(0)} µs`,
  );
}
for (const name of Object.keys(examples)) {
  Deno.bench(`examples - ${name} mr_reconcile`, { group: "examples" }, async () => {
    await plugins[name]!.call("mr_reconcile", input);
  });
}
globalThis.addEventListener("unload", () => {
  sb.close();
  srv.shutdown();
});
