// The WASI example agents (wasm-examples/file-watch in C with wasi-libc, log-scan in Rust
// std on wasm32-wasi, built from source by scripts/build_examples.ts): plugin inspect, plugin
// run with their grants, each narrowed grant refused with the right error, and a real
// daemon running both from signed desired state with their grants.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { AwsClient } from "aws4fetch";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { type S3Server, startS3 } from "./helpers/s3.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { createSigningKey, signSpec } from "../src/desired/envelope.ts";
import { compileWat } from "./helpers/wat.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MAIN = join(ROOT, "main.ts");
const dec = new TextDecoder();

const build = await new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", join(ROOT, "scripts/build_examples.ts"), "file-watch", "log-scan"],
  stdout: "null",
  stderr: "piped",
}).output();
if (!build.success) throw new Error(dec.decode(build.stderr));
const dist = (n: string) => join(ROOT, "wasm-examples/dist", `${n}.wasm`);

async function mr(args: string[], cwd: string) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { MR_STATE_DIR: `${cwd}/state`, MR_LOG_LEVEL: "info" },
  }).output();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/** A data dir: in/app.log (read grant), out/ (write grant), secret/ (no grant). */
async function tree(): Promise<string> {
  const d = await Deno.realPath(await Deno.makeTempDir({ prefix: "mr-wasi-ex-" }));
  await Deno.mkdir(`${d}/in`);
  await Deno.mkdir(`${d}/out`);
  await Deno.mkdir(`${d}/secret`);
  await Deno.writeTextFile(`${d}/in/app.log`, "start\nERROR disk\nok\nERROR net\n");
  await Deno.writeTextFile(`${d}/secret/app.log`, "ERROR\n");
  return d;
}

const fileWatch = (d: string, file = `${d}/in/app.log`) => ({
  env: { WATCH_FILE: file, REPORT_DIR: `${d}/out`, MAX_BYTES: "1000" },
});
const logScan = (d: string, file = `${d}/in/app.log`) => ({
  env: { LOG_FILE: file, STATE_DIR: `${d}/out`, PATTERN: "ERROR" },
});
const grant = (d: string, o: { read?: boolean; write?: boolean } = {}) => ({
  files: {
    read: o.read === false ? [] : [`${d}/in/**`, `${d}/out/**`],
    write: o.write === false ? [] : [`${d}/out/**`],
  },
});

Deno.test("wasi examples - plugin inspect: WASI imports, ABI ok", async () => {
  const d = await tree();
  try {
    for (const n of ["file-watch", "log-scan"]) {
      const r = await mr(["plugin", "inspect", dist(n), "--json"], d);
      assertEquals(r.code, 0, r.stderr);
      const info = JSON.parse(r.stdout);
      assertEquals(info.abiCompatible, true, JSON.stringify(info.abiProblems));
      assert(info.wasiFunctions.includes("path_open"), n);
      assert(info.wasiFunctions.includes("fd_write"), n);
      assert(info.exports.includes("mr_reconcile"), n);
    }
  } finally {
    await Deno.remove(d, { recursive: true });
  }
});

Deno.test("wasi examples - plugin run with the grants; each narrowed grant is refused", async () => {
  const d = await tree();
  try {
    const run = (n: string, config: unknown, g: unknown, extra: string[] = []) =>
      mr([
        "plugin",
        "run",
        dist(n),
        "--config",
        JSON.stringify(config),
        "--grant",
        JSON.stringify(g),
        ...extra,
      ], d);
    // C: reads the log, writes the report, logs on stdout
    const fw = await run("file-watch", fileWatch(d), grant(d));
    assertEquals(fw.code, 0, fw.stderr);
    assertEquals(JSON.parse(fw.stdout).status, "ok");
    const logLine = fw.stderr.trim().split("\n").map((l) => JSON.parse(l))
      .find((l) => /^file-watch: .*app\.log has 30 bytes, 4 lines/.test(l.msg));
    assertEquals([logLine?.agent, logLine?.stream, logLine?.level], [
      "file-watch",
      "stdout",
      "info",
    ]);
    const report = JSON.parse(await Deno.readTextFile(`${d}/out/file-watch.json`));
    assertEquals([report.bytes, report.lines], [30, 4]);
    assert(Math.abs(report.at - Date.now() / 1000) < 600, "realtime clock");
    // Rust: counts ERROR lines, keeps its count in the state file; stdout shown
    const ls1 = await run("log-scan", logScan(d), grant(d), ["--wasi-stdout"]);
    assertEquals(ls1.code, 0, ls1.stderr);
    const [line, out] = ls1.stdout.trim().split("\n");
    assertMatch(line!, /^log-scan: .*app.log has 2 lines with "ERROR" \(before: None\)/);
    assertEquals(JSON.parse(out!).status, "changed");
    assertEquals(await Deno.readTextFile(`${d}/out/log-scan.state`), "2\n");
    const ls2 = await run("log-scan", logScan(d), grant(d));
    assertEquals(JSON.parse(ls2.stdout).status, "ok");

    // narrowed: no write grant → the write is refused with ENOTCAPABLE (76)
    for (const [n, cfg] of [["file-watch", fileWatch(d)], ["log-scan", logScan(d)]] as const) {
      const r = await run(n, cfg, grant(d, { write: false }));
      assertEquals(r.code, 0, r.stderr);
      const res = JSON.parse(r.stdout);
      assertEquals(res.status, "failed", n);
      assertMatch(
        res.message,
        /cannot write .*(Capabilities insufficient|errno 76|os error 76)/,
        n,
      );
      assertMatch(r.stderr, /"audit":true/);
      // no read grant → the read is refused the same way
      const nr = await run(n, cfg, grant(d, { read: false, write: false }));
      assertMatch(
        JSON.parse(nr.stdout).message,
        /cannot (open|read) .*(Capabilities insufficient|os error 76)/,
        n,
      );
    }
    // a file outside the grant (existing or not) gets the same refusal
    for (const f of [`${d}/secret/app.log`, `${d}/secret/missing.log`, "/etc/passwd"]) {
      const r = await run("file-watch", fileWatch(d, f), grant(d));
      assertMatch(JSON.parse(r.stdout).message, /Capabilities insufficient/, f);
      const r2 = await run("log-scan", logScan(d, f), grant(d));
      assertMatch(JSON.parse(r2.stdout).message, /os error 76/, f);
    }
    // no env from config → the agent says so (nothing from the host environment leaks in)
    const noenv = await run("file-watch", {}, grant(d));
    assertMatch(JSON.parse(noenv.stdout).message, /config.env needs WATCH_FILE/);
  } finally {
    await Deno.remove(d, { recursive: true });
  }
});

async function upload(s3: S3Server, bytes: Uint8Array) {
  const aws = new AwsClient({
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    region: s3.region,
    service: "s3",
  });
  const hex = createHash("sha256").update(bytes).digest("hex");
  const r = await aws.fetch(`${s3.endpoint}/${s3.bucket}/sha256/${hex}.wasm`, {
    method: "PUT",
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  assert(r.ok, `upload failed: ${r.status}`);
  return { sha256: hex, size: bytes.length, url: `s3://${s3.bucket}/sha256/${hex}.wasm` };
}

Deno.test("wasi examples - a daemon runs both with their grants; a narrowed grant is refused", async () => {
  await using srv = await startNatsServer();
  await using s3 = await startS3();
  const d = await tree();
  const nc = await connect({ servers: srv.url });
  try {
    await ensureStreams(nc);
    const key = createSigningKey();
    const kv = await new Kvm(nc).open("MR_DESIRED");
    const fw = await upload(s3, await Deno.readFile(dist("file-watch")));
    const ls = await upload(s3, await Deno.readFile(dist("log-scan")));
    const spin = await upload(s3, await compileWat("wasi_spin_init"));
    const agents = [
      {
        name: "file-watch",
        wasm: fw,
        config: fileWatch(d),
        grants: grant(d),
        triggers: { interval: "500ms" },
      },
      {
        name: "log-scan",
        wasm: ls,
        config: logScan(d),
        grants: grant(d),
        triggers: { interval: "500ms" },
      },
      // the same C agent with no write grant
      {
        name: "file-watch-ro",
        wasm: fw,
        config: { env: { ...fileWatch(d).env, REPORT_DIR: `${d}/in` } },
        grants: grant(d),
        triggers: { interval: "500ms" },
      },
      // a reactor whose _initialize spins: stopped by fuel at each (re)start
      {
        name: "spin-init",
        wasm: spin,
        limits: { fuel: 5_000_000 },
        triggers: { interval: "500ms" },
      },
    ];
    await kv.put(
      "site.site1",
      JSON.stringify(
        signSpec({ version: 1, customer: "acme", target: "site.site1", agents }, key.seed),
      ),
    );
    await using node = await startNode({
      natsUrl: srv.url,
      node: "wasi",
      config: { trust: { spec_keys: [key.publicKey] }, s3: s3.config },
    });
    const has = (re: RegExp) => node.logs().some((l) => re.test(l));
    await waitFor(
      () => Promise.resolve(has(/"msg":"file-watch: .* 4 lines/)),
      30_000,
      "file-watch stdout",
    );
    await waitFor(
      () => Promise.resolve(has(/"msg":"log-scan: .* 2 lines with/)),
      30_000,
      "log-scan stdout",
    );
    assertEquals(JSON.parse(await Deno.readTextFile(`${d}/out/file-watch.json`)).lines, 4);
    assertEquals(await Deno.readTextFile(`${d}/out/log-scan.state`), "2\n");
    // the narrowed one: its report write into in/ is refused, with an audit line
    await waitFor(
      () =>
        Promise.resolve(
          has(/"msg":"file-watch: cannot write .*in\/file-watch.json: Capabilities insufficient/),
        ),
      30_000,
      "file-watch-ro refusal",
    );
    assert(
      node.logs().map((l) => JSON.parse(l)).some((l) =>
        l.audit === true && l.agent === "file-watch-ro" && l.host_function === "wasi:path_open"
      ),
      "audit line",
    );
    // the spinning _initialize is stopped by fuel; the others are not disturbed
    await waitFor(
      () =>
        Promise.resolve(
          node.logs().map((l) => JSON.parse(l)).some((l) =>
            l.agent === "spin-init" && l.code === "fuel_exhausted"
          ),
        ),
      30_000,
      "spin-init stopped",
    );
    // the daemon stays healthy and keeps reconciling
    const h = await node.health();
    assert(h, "health");
    await Deno.writeTextFile(`${d}/in/app.log`, "ERROR again\n", { append: true });
    await waitFor(
      () => Promise.resolve(has(/"msg":"log-scan: .* 3 lines with/)),
      30_000,
      "log-scan sees the new line",
    );
  } finally {
    await nc.close();
    await Deno.remove(d, { recursive: true });
  }
});
