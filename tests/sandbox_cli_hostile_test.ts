/**
 * `plugin run` against hostile modules with `--memory-mb 1`: a table bomb and host-reply
 * floods exit 3 with `memory_limit` as the JSON error line, quickly and without growing.
 */
import { assertEquals } from "@std/assert";
import { compileWat } from "./helpers/wat.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function mr(args: string[], cwd: string) {
  const t0 = Date.now();
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { MR_STATE_DIR: `${cwd}/state`, MR_LOG_LEVEL: "warn" },
  }).output();
  const stderr = new TextDecoder().decode(r.stderr);
  const last = stderr.trim().split("\n").at(-1) ?? "";
  return { code: r.code, ms: Date.now() - t0, error: JSON.parse(last).error as { code: string } };
}

Deno.test("sandbox cli - tables and host-reply floods with --memory-mb 1 exit 3 with memory_limit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mr-cli-hostile-" });
  try {
    await Deno.writeFile(`${dir}/tables.wasm`, await compileWat("tables"));
    await Deno.writeFile(`${dir}/flood.wasm`, await compileWat("host_flood"));
    await Deno.writeTextFile(`${dir}/big.txt`, "x".repeat(1024 * 1024 - 64));
    const tables = await mr(
      ["plugin", "run", "tables.wasm", "--call", "ok", "--memory-mb", "1"],
      dir,
    );
    assertEquals(tables.code, 3);
    assertEquals(tables.error.code, "memory_limit");
    const read = await mr([
      "plugin",
      "run",
      "flood.wasm",
      "--call",
      "read_loop",
      "--input",
      JSON.stringify({ path: `${dir}/big.txt` }),
      "--grant",
      JSON.stringify({ files: { read: [`${dir}/*`] } }),
      "--memory-mb",
      "1",
      "--timeout-ms",
      "3000",
    ], dir);
    assertEquals(read.code, 3);
    assertEquals(read.error.code, "memory_limit");
    // a 60 KB state value read in a loop: memory_mb after a few replies
    await Deno.writeTextFile(
      `${dir}/put.json`,
      JSON.stringify({ key: "k", value: "y".repeat(60_000) }),
    );
    const grant = JSON.stringify({ files: { read: [`${dir}/*`] } });
    const put = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "plugin",
        "run",
        "flood.wasm",
        "--call",
        "put",
        "--input-file",
        "put.json",
        "--grant",
        grant,
      ],
      cwd: dir,
      env: { MR_STATE_DIR: `${dir}/state`, MR_LOG_LEVEL: "warn" },
    }).output();
    assertEquals(put.code, 0, new TextDecoder().decode(put.stderr));
    const state = await mr([
      "plugin",
      "run",
      "flood.wasm",
      "--call",
      "get_loop",
      "--input",
      JSON.stringify({ key: "k" }),
      "--grant",
      grant,
      "--memory-mb",
      "1",
      "--timeout-ms",
      "5000",
    ], dir);
    assertEquals(state.code, 3);
    assertEquals(state.error.code, "memory_limit");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
