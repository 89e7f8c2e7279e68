import { assert, assertEquals, assertMatch } from "@std/assert";
import { compileWat } from "./helpers/wat.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function mr(args: string[], cwd: string): Promise<Run> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { MR_STATE_DIR: `${cwd}/state`, MR_LOG_LEVEL: "warn" },
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

function lastErrorLine(stderr: string): { code: string; message: string } {
  const last = stderr.trim().split("\n").at(-1) ?? "";
  return (JSON.parse(last) as { error: { code: string; message: string } }).error;
}

async function fixtures(): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "mr-cli-" });
  for (const n of ["echo", "runaway", "exec", "network", "files"]) {
    await Deno.writeFile(`${dir}/${n}.wasm`, await compileWat(n));
  }
  await Deno.writeTextFile(`${dir}/garbage.wasm`, "not wasm");
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("plugin cli - run prints the output and exits 0", async () => {
  await using f = await fixtures();
  const r = await mr([
    "plugin",
    "run",
    `${f.dir}/echo.wasm`,
    "--call",
    "echo",
    "--input",
    '{"hi":1}',
  ], f.dir);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(JSON.parse(r.stdout), { hi: 1 });
});

Deno.test("plugin cli - sandbox stops exit 3 with the JSON error as stderr's last line", async () => {
  await using f = await fixtures();
  const cases: [string[], string][] = [
    [["runaway.wasm", "--call", "spin", "--fuel", "100000"], "fuel_exhausted"],
    [
      ["runaway.wasm", "--call", "spin", "--fuel", "100000000000", "--timeout-ms", "200"],
      "timeout",
    ],
    [["runaway.wasm", "--call", "recurse"], "trap"],
    [["runaway.wasm", "--call", "grow", "--memory-mb", "2"], "memory_limit"],
    [["runaway.wasm", "--call", "huge", "--memory-mb", "8"], "output_too_large"],
    [["exec.wasm", "--call", "mr_exec"], "capability_denied"],
    [["garbage.wasm"], "invalid_module"],
  ];
  for (const [args, code] of cases) {
    const [file, ...rest] = args;
    const r = await mr(["plugin", "run", `${f.dir}/${file}`, ...rest], f.dir);
    assertEquals(r.code, 3, `${args.join(" ")}: ${r.stderr}`);
    assertEquals(lastErrorLine(r.stderr).code, code, args.join(" "));
  }
});

Deno.test("plugin cli - invalid --grant exits 2 naming the path", async () => {
  await using f = await fixtures();
  const r = await mr([
    "plugin",
    "run",
    `${f.dir}/exec.wasm`,
    "--call",
    "mr_exec",
    "--grant",
    '{"exec":[["echo"]],"files":{"read":"/etc"}}',
  ], f.dir);
  assertEquals(r.code, 2);
  assertStringIn(r.stderr, "files.read");
  const bad = await mr(["plugin", "run", `${f.dir}/exec.wasm`, "--grant", "{nope"], f.dir);
  assertEquals(bad.code, 2);
  assertStringIn(bad.stderr, "--grant");
  const unknown = await mr(
    ["plugin", "run", `${f.dir}/exec.wasm`, "--grant", '{"root":true}'],
    f.dir,
  );
  assertEquals(unknown.code, 2);
});

Deno.test("plugin cli - --grant @file, a run-time denial and --json event lines", async () => {
  await using f = await fixtures();
  await Deno.writeTextFile(`${f.dir}/grant.json`, JSON.stringify({ exec: [["echo", "ok"]] }));
  const r = await mr([
    "plugin",
    "run",
    `${f.dir}/exec.wasm`,
    "--call",
    "mr_exec",
    "--input",
    '{"argv":["echo","nope"]}',
    "--grant",
    `@${f.dir}/grant.json`,
    "--json",
  ], f.dir);
  assertEquals(r.code, 0, r.stderr);
  const [first, ...rest] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assertEquals(first.error.code, "capability_denied");
  const audit = rest.find((l) => l.kind === "log" && l.audit === true);
  assertEquals(audit?.host_function, "mr_exec");

  const ev = await mr([
    "plugin",
    "run",
    `${f.dir}/network.wasm`,
    "--call",
    "mr_event",
    "--input",
    '{"type":"disk.full","data":{"pct":97}}',
    "--grant",
    '{"events":true,"facts":true,"metrics":true,"submit":["a"],"kv_read":["a"],"governors":["g"]}',
    "--json",
  ], f.dir);
  assertEquals(ev.code, 0, ev.stderr);
  const lines = ev.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assertMatch(lines[0].id, /^[0-9A-Z]{26}$/);
  assertEquals(lines[1], {
    kind: "event",
    agent: "network",
    id: lines[0].id,
    type: "disk.full",
    data: { pct: 97 },
  });
});

Deno.test("plugin cli - inspect prints sha256, exports and ABI problems", async () => {
  await using f = await fixtures();
  const r = await mr(["plugin", "inspect", `${f.dir}/network.wasm`, "--json"], f.dir);
  assertEquals(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  const expected = await crypto.subtle.digest(
    "SHA-256",
    await Deno.readFile(`${f.dir}/network.wasm`),
  );
  assertEquals(
    info.sha256,
    [...new Uint8Array(expected)].map((b) => b.toString(16).padStart(2, "0")).join(""),
  );
  assert(info.hostFunctions.includes("mr_event"));
  assertEquals(info.abiCompatible, false);
  const human = await mr(["plugin", "inspect", `${f.dir}/echo.wasm`], f.dir);
  assertEquals(human.code, 0);
  assertStringIn(human.stdout, "sha256:");
  const garbage = await mr(["plugin", "inspect", `${f.dir}/garbage.wasm`], f.dir);
  assertEquals(garbage.code, 3);
  assertEquals(lastErrorLine(garbage.stderr).code, "invalid_module");
});

function assertStringIn(haystack: string, needle: string): void {
  assert(haystack.includes(needle), `expected ${JSON.stringify(needle)} in ${haystack}`);
}
