/**
 * `plugin run` like `extism call`: raw --input, --input-file, --input - (stdin), --config
 * for config_get and WASI env, --wasi-stdout, a WASI command's _start, exit codes.
 */
import { assertEquals, assertMatch } from "@std/assert";
import { compileWat } from "./helpers/wat.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function mr(args: string[], cwd: string, stdin?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { MR_STATE_DIR: `${cwd}/state`, MR_LOG_LEVEL: "info" },
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const r = await child.output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

Deno.test("plugin cli - raw --input, --input-file, --input - and --config for config_get", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mr-cli-wasi-" });
  try {
    for (const n of ["echo", "kernel", "wasi_reactor", "wasi_command", "wasi_spin_init"]) {
      await Deno.writeFile(`${dir}/${n}.wasm`, await compileWat(n));
    }
    // bytes as given, not JSON
    const raw = await mr([
      "plugin",
      "run",
      `${dir}/echo.wasm`,
      "--call",
      "echo",
      "--input",
      "not {json",
    ], dir);
    assertEquals(raw.code, 0, raw.stderr);
    assertEquals(raw.stdout, "not {json\n");
    await Deno.writeTextFile(`${dir}/in.txt`, "from a file");
    const file = await mr([
      "plugin",
      "run",
      `${dir}/echo.wasm`,
      "--call",
      "echo",
      "--input-file",
      `${dir}/in.txt`,
    ], dir);
    assertEquals(file.stdout, "from a file\n");
    const stdin = await mr(
      ["plugin", "run", `${dir}/echo.wasm`, "--call", "echo", "--input", "-"],
      dir,
      "piped in",
    );
    assertEquals(stdin.stdout, "piped in\n");
    const both = await mr([
      "plugin",
      "run",
      `${dir}/echo.wasm`,
      "--call",
      "echo",
      "--input",
      "a",
      "--input-file",
      `${dir}/in.txt`,
    ], dir);
    assertEquals(both.code, 2);
    const missing = await mr([
      "plugin",
      "run",
      `${dir}/echo.wasm`,
      "--call",
      "echo",
      "--input-file",
      `${dir}/nope`,
    ], dir);
    assertEquals(missing.code, 2);
    assertMatch(missing.stderr, /--input-file/);
    // --config feeds config_get
    const cfg = await mr([
      "plugin",
      "run",
      `${dir}/kernel.wasm`,
      "--call",
      "config",
      "--input",
      "region",
      "--config",
      '{"region":"eu-1"}',
    ], dir);
    assertEquals(cfg.code, 0, cfg.stderr);
    assertEquals(cfg.stdout, "eu-1\n");
    // error_set is a plugin error: exit 1
    const fail = await mr(["plugin", "run", `${dir}/kernel.wasm`, "--call", "fail"], dir);
    assertEquals(fail.code, 1);
    assertMatch(fail.stderr, /bad thing happened/);
    // WASI env from --config; stdout logged, or printed with --wasi-stdout
    const env = await mr([
      "plugin",
      "run",
      `${dir}/wasi_reactor.wasm`,
      "--call",
      "env",
      "--config",
      '{"env":{"A":"1"}}',
    ], dir);
    assertEquals(env.stdout, "A=1\0\n");
    const logged = await mr(["plugin", "run", `${dir}/wasi_reactor.wasm`, "--call", "hello"], dir);
    assertEquals(logged.stdout, "ok\n");
    assertMatch(logged.stderr, /"msg":"hello stdout"/);
    const shown = await mr([
      "plugin",
      "run",
      `${dir}/wasi_reactor.wasm`,
      "--call",
      "hello",
      "--wasi-stdout",
    ], dir);
    assertEquals(shown.stdout, "init done\nhello stdout\nok\n");
    // a command module runs _start by default; proc_exit(7) is exit 1
    const cmd = await mr(["plugin", "run", `${dir}/wasi_command.wasm`, "--wasi-stdout"], dir);
    assertEquals(cmd.code, 0, cmd.stderr);
    assertEquals(cmd.stdout, "hello from _start\n\n");
    const exit7 = await mr(["plugin", "run", `${dir}/wasi_reactor.wasm`, "--call", "exit7"], dir);
    assertEquals(exit7.code, 1);
    assertMatch(exit7.stderr, /exited with code 7/);
    // a spin in _start is a sandbox stop: exit 3
    const spin = await mr([
      "plugin",
      "run",
      `${dir}/wasi_command.wasm`,
      "--call",
      "spin",
      "--fuel",
      "1000000",
    ], dir);
    assertEquals(spin.code, 3);
    assertMatch(spin.stderr.trim().split("\n").at(-1)!, /fuel_exhausted/);
    // so is a spin in a reactor's _initialize (it runs at the first call)
    const init = await mr([
      "plugin",
      "run",
      `${dir}/wasi_spin_init.wasm`,
      "--timeout-ms",
      "500",
      "--fuel",
      "1000000000000",
    ], dir);
    assertEquals(init.code, 3);
    assertMatch(init.stderr.trim().split("\n").at(-1)!, /"code":"timeout"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
