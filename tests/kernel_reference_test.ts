// Differential check against Extism's reference host: the same WAT fixtures run under
// @extism/extism on Node (which has WASI) and in our sandbox, case by case: config_get,
// var_get/var_set across calls, error_set, log levels, a WASI reactor's _initialize.
// Ignored where Node is not installed (or Deno has not laid out node_modules).
import { assertEquals } from "@std/assert";
import { join } from "node:path";
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { PluginError } from "../src/plugins/mod.ts";
import { compileWat, setupSandbox } from "./helpers/wat.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SDK = join(ROOT, "node_modules/@extism/extism/dist/cjs/index.js");
const hasNode = await new Deno.Command("node", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false) &&
  (await Deno.stat(SDK).then(() => true, () => false));

const SCRIPT = `
const { createPlugin } = require(process.argv[2]);
const fs = require("fs");
(async () => {
  const out = {};
  const logs = [];
  const logger = Object.fromEntries(["info", "debug", "warn", "error"].map((l) => [l, (m) => logs.push([l, m])]));
  const p = await createPlugin({ wasm: [{ data: fs.readFileSync(process.argv[3]) }] },
    { useWasi: false, logger, config: { name: "disk", threshold: "90" } });
  const text = async (fn, input) => {
    try { const o = await p.call(fn, input); return o ? o.text() : ""; }
    catch (e) { return "ERR " + e.message.replace("Plugin-originated error: ", ""); }
  };
  out.name = await text("config", "name");
  out.absent = await text("config", "absent");
  out.incr = [];
  for (let i = 0; i < 3; i++) out.incr.push(Number((await p.call("incr")).getBigUint64(0, true)));
  out.fail = await text("fail");
  await p.call("logs");
  out.logs = logs;
  const w = await createPlugin({ wasm: [{ data: fs.readFileSync(process.argv[4]) }] },
    { useWasi: true, logger: { info() {}, debug() {}, warn() {}, error() {} } });
  out.inited = (await w.call("inited")).text();
  out.hello = (await w.call("hello")).text();
  console.log(JSON.stringify(out));
})();
`;

Deno.test({
  name: "kernel - same answers as Extism's reference host (js-sdk on Node)",
  ignore: !hasNode,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mr-ref-" });
    try {
      const kernel = await compileWat("kernel");
      const reactor = await compileWat("wasi_reactor");
      await Deno.writeFile(`${dir}/kernel.wasm`, kernel);
      await Deno.writeFile(`${dir}/reactor.wasm`, reactor);
      await Deno.writeTextFile(`${dir}/ref.cjs`, SCRIPT);
      const o = await new Deno.Command("node", {
        args: ["--no-warnings", `${dir}/ref.cjs`, SDK, `${dir}/kernel.wasm`, `${dir}/reactor.wasm`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(o.code, 0, new TextDecoder().decode(o.stderr));
      const ref = JSON.parse(new TextDecoder().decode(o.stdout).trim().split("\n").at(-1)!);

      await using t = await setupSandbox();
      const limits = limitsSchema.parse({ timeout_ms: 3000 });
      const grants = grantsSchema.parse({});
      const p = await t.sandbox.load(kernel, {
        name: "kernel",
        grants,
        limits,
        config: { name: "disk", threshold: "90" },
      });
      const text = async (fn: string, input?: string) => {
        try {
          return new TextDecoder().decode(await p.call(fn, input));
        } catch (e) {
          return e instanceof PluginError ? `ERR ${e.message}` : String(e);
        }
      };
      const ours: Record<string, unknown> = {};
      ours["name"] = await text("config", "name");
      ours["absent"] = await text("config", "absent");
      const incr: number[] = [];
      for (let i = 0; i < 3; i++) {
        const b = await p.call("incr");
        incr.push(Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true)));
      }
      ours["incr"] = incr;
      ours["fail"] = await text("fail");
      await p.call("logs");
      for (let i = 0; i < 100 && !t.logs.some((l) => l.includes("kernel debug")); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      ours["logs"] = t.logs.map((l) => JSON.parse(l)).filter((l) =>
        String(l.msg).startsWith("kernel ")
      )
        .map((l) => [l.level, l.msg]);
      const w = await t.sandbox.load(reactor, { name: "reactor", grants, limits });
      ours["inited"] = new TextDecoder().decode(await w.call("inited"));
      ours["hello"] = new TextDecoder().decode(await w.call("hello"));
      assertEquals(ours, ref);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
