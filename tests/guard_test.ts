// The daemon's process guard (src/daemon/guard.ts) in a real child process: a socket
// error nobody handles is logged and survived; a real bug still ends the process.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { isNetworkError } from "../src/daemon/guard.ts";

const probe = new URL("./fixtures/guard_probe.ts", import.meta.url).pathname;
const dec = new TextDecoder();

async function run(kind: string) {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", probe, kind],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

Deno.test("guard - an unhandled ECONNRESET is logged and the process lives on", async () => {
  const r = await run("reset");
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout.trim(), "alive");
  const line = JSON.parse(r.stderr.trim().split("\n").find((l) => l.includes("ECONNRESET"))!);
  assertEquals(line.level, "warn");
  assertEquals(line.code, "ECONNRESET");
});

Deno.test("guard - an unawaited EPIPE rejection is survived too", async () => {
  const r = await run("reject");
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout.trim(), "alive");
  assertMatch(r.stderr, /EPIPE/);
});

Deno.test("guard - any other uncaught error still ends the process, logged", async () => {
  const r = await run("bug");
  assert(r.code !== 0);
  assertEquals(r.stdout.trim(), "");
  assertMatch(r.stderr, /"level":"error".*uncaught error; exiting.*a real bug/);
});

Deno.test("guard - isNetworkError", () => {
  assert(isNetworkError(Object.assign(new Error("x"), { code: "ECONNRESET" })));
  assert(isNetworkError(new Deno.errors.BrokenPipe("x")));
  assert(!isNetworkError(new TypeError("x")));
  assert(!isNetworkError(Object.assign(new Error("x"), { code: "ENOENT" })));
  assert(!isNetworkError("ECONNRESET"));
});
