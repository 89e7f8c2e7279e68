import { assert, assertEquals } from "@std/assert";
import { createLogger, redact } from "./logger.ts";

Deno.test("log - writes JSON lines with level filtering and child fields", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "info", write: (l) => lines.push(l), now: () => new Date(0) });
  log.debug("hidden");
  log.child({ component: "spool" }).info("opened", { n: 1 });
  assertEquals(lines.length, 1);
  assertEquals(JSON.parse(lines[0]!), {
    ts: "1970-01-01T00:00:00.000Z",
    level: "info",
    msg: "opened",
    component: "spool",
    n: 1,
  });
});

Deno.test("log - redacts secrets by key and by shape", () => {
  const seed = "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4";
  const out = JSON.stringify(
    redact({ seed, note: `creds ${seed}`, password: "x", nested: { token: "t" } }),
  );
  assert(!out.includes(seed), out);
  assert(!out.includes('"x"'));
  assert(out.includes("[redacted-seed]"));
});

Deno.test("log - audit lines are always marked and at warn", () => {
  const lines: string[] = [];
  createLogger({ level: "warn", write: (l) => lines.push(l) }).audit("capability denied", {
    fn: "mr_exec",
  });
  const rec = JSON.parse(lines[0]!);
  assertEquals([rec.level, rec.audit, rec.fn], ["warn", true, "mr_exec"]);
});
