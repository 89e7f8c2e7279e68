import { assert, assertEquals } from "@std/assert";
import { AgentLog } from "./agent_log.ts";
import { createLogger } from "./logger.ts";

function setup() {
  const lines: Record<string, unknown>[] = [];
  let t = 0;
  const logger = createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  const log = new AgentLog(logger, {
    linesPerSec: 10,
    burstLines: 5,
    bytesPerSec: 1000,
    burstBytes: 2000,
    maxMsgBytes: 100,
    now: () => t,
  });
  return { lines, log, tick: (ms: number) => (t += ms) };
}

Deno.test("agent log - burst then rate, per agent; drops counted per agent and in total", () => {
  const { lines, log, tick } = setup();
  for (let i = 0; i < 8; i++) log.write("a", "info", `m${i}`);
  assertEquals(lines.length, 5);
  assertEquals([log.dropped("a"), log.dropped()], [3, 3]);
  assert(log.write("b", "info", "other agent has its own bucket"));
  tick(100); // one line's worth of tokens
  assert(log.write("a", "info", "again"));
  assert(!log.write("a", "info", "too soon"));
  assertEquals(log.dropped("a"), 4);
  // bytes: one 1.9 KB line empties the byte bucket
  tick(10_000);
  assert(log.write("c", "info", "x", { pad: "y".repeat(1800) }));
  assert(!log.write("c", "info", "x", { pad: "y".repeat(1800) }));
});

Deno.test("agent log - core keys are the host's; fields nested; long messages truncated", () => {
  const { lines, log } = setup();
  log.write("a", "audit", "z".repeat(500), { ts: "x", agent: "b", audit: true, level: "error" });
  const l = lines[0]!;
  assertEquals([l.agent, l.level, l.audit], ["a", "info", undefined]);
  assertEquals((l.fields as Record<string, unknown>).agent, "b");
  assert(String(l.msg).length <= 101);
});

Deno.test("log - no field overwrites ts, level, msg or audit", () => {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ write: (l) => lines.push(JSON.parse(l)), now: () => new Date(0) })
    .child({ level: "error", msg: "child" });
  log.info("real", { ts: "forged", audit: true, msg: "forged" });
  assertEquals(lines[0], { ts: "1970-01-01T00:00:00.000Z", level: "info", msg: "real" });
  log.audit("denied", { audit: false });
  assertEquals(lines[1]!.audit, true);
});
