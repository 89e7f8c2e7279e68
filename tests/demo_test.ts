// `deno task demo` (scripts/demo.ts): the stack comes up, the agent runs and is hot-swapped,
// and nothing is left running afterwards.
import { assert, assertEquals, assertMatch } from "@std/assert";

Deno.test("demo - runs the stack end to end and leaves nothing running", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../scripts/demo.ts", import.meta.url).pathname,
      "--duration",
      "20s",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  assertMatch(text, /lifecycle\.v1\.startup/);
  assertMatch(text, /agent\.v1\.started/);
  assertMatch(text, /agent\.reporter\.tick\s+\{"v":1/);
  assertMatch(text, /agent\.v1\.updated/);
  assertMatch(text, /agent\.reporter\.tick\s+\{"v":2/);
  assertMatch(text, /stopped; nothing left running/);
  const consolePort = /fleet console: open http:\/\/127\.0\.0\.1:(\d+)\/login\?token=[\w-]{43}/
    .exec(text)?.[1];
  assert(consolePort, "the demo prints the console's login URL");
  const pid = Number(/running \(pid (\d+)\)/.exec(text)?.[1]);
  assert(pid > 0);
  let alive = true;
  try {
    Deno.statSync(`/proc/${pid}`);
  } catch {
    alive = false;
  }
  assert(!alive, "the edge node process is gone");
  const url = /nats-server \(JetStream\) at nats:\/\/127\.0\.0\.1:(\d+)/.exec(text)?.[1];
  let connected = true;
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port: Number(url) })).close();
  } catch {
    connected = false;
  }
  assert(!connected, "nats-server is stopped");
  let served = true;
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port: Number(consolePort) })).close();
  } catch {
    served = false;
  }
  assert(!served, "the console is stopped");
});
