import { assertEquals, assertThrows } from "@std/assert";
import { agentSpecSchema } from "../desired/spec.ts";
import { cacheKeepSet, pushHistory, selectAgents } from "./select.ts";
import { failureLimit, type NodeRecord, parseRolloutRecord, rolloutDecision } from "./rollout.ts";
import { parseRunningCache, RunningCacheError } from "./running_cache.ts";

const h = (c: string) => c.repeat(64);
const spec = (name: string, extra: Record<string, unknown> = {}) =>
  agentSpecSchema.parse({
    name,
    wasm: { sha256: h("a"), size: 1, url: "s3://b/x.wasm" },
    ...extra,
  });

Deno.test("select - match and leader_only decide which agents run", () => {
  const agents = [
    spec("all"),
    spec("linux", { match: { "os.platform": "linux" } }),
    spec("mac", { match: { "os.platform": "darwin" } }),
    spec("lead", { leader_only: true }),
  ];
  const facts = { os: { platform: "linux" } };
  assertEquals([...selectAgents(agents, facts, false).keys()], ["all", "linux"]);
  assertEquals([...selectAgents(agents, facts, true).keys()], ["all", "linux", "lead"]);
});

Deno.test("select - the cache keeps desired hashes and the last two of each agent, removed ones too", () => {
  const keep = cacheKeepSet([spec("x", { wasm: { sha256: h("d"), size: 1, url: "s3://b/d" } })], {
    x: [h("1"), h("2"), h("3")],
    gone: [h("4")],
  });
  assertEquals([...keep].sort(), [h("2"), h("3"), h("4"), h("d")].sort());
  assertEquals(pushHistory([h("1"), h("2")], h("1")), [h("2"), h("1")]);
});

Deno.test("rollout - max_failures as a count or a percentage; in-flight nodes make others wait", () => {
  assertEquals(failureLimit(2, 6), 2);
  assertEquals(failureLimit("34%", 6), 3);
  assertEquals(failureLimit("1%", 6), 1);
  assertEquals(failureLimit(undefined, 6), Infinity);
  const now = Date.parse("2026-01-01T00:10:00Z");
  const rec = (
    node: string,
    sha: string,
    state: NodeRecord["state"],
    ts = "2026-01-01T00:09:00Z",
  ) => ({
    node,
    version: 2,
    sha256: sha,
    previous_sha256: null,
    state,
    code: null,
    ts,
  });
  const o = { self: "n9", now };
  const failed2 = [
    rec("n1", h("b"), "failed"),
    rec("n2", h("b"), "failed"),
    rec("n3", h("a"), "healthy"),
  ];
  assertEquals(rolloutDecision(failed2, h("b"), 2, o).decision, "halted");
  assertEquals(rolloutDecision(failed2, h("b"), 3, o).decision, "go");
  assertEquals(rolloutDecision(failed2, h("a"), 1, o).decision, "go");
  const oneInFlight = [
    rec("n1", h("b"), "failed"),
    rec("n2", h("b"), "started"),
    rec("n3", h("a"), "healthy"),
  ];
  assertEquals(rolloutDecision(oneInFlight, h("b"), 2, o).decision, "wait");
  assertEquals(rolloutDecision(oneInFlight, h("b"), 2, { ...o, self: "n2" }).decision, "go");
  const stale = [rec("n1", h("b"), "failed"), rec("n2", h("b"), "started", "2025-12-31T00:00:00Z")];
  assertEquals(rolloutDecision(stale, h("b"), 2, o).decision, "go", "a dead node's start expires");
});

Deno.test("running cache - zod schema, old format read, errors name the field", () => {
  const s = spec("x");
  assertEquals(parseRunningCache(JSON.stringify({ x: s })).agents.x!.name, "x");
  assertEquals(
    parseRunningCache(JSON.stringify({ version: 1, agents: { x: s }, history: { x: [h("a")] } }))
      .history.x,
    [h("a")],
  );
  assertThrows(
    () =>
      parseRunningCache(JSON.stringify({ version: 1, agents: { x: { name: "x" } } }), "/r.json"),
    RunningCacheError,
    "/r.json: agents.x.wasm",
  );
  assertThrows(() => parseRunningCache("nope", "/r.json"), RunningCacheError, "not JSON");
});

Deno.test("rollout - records that are not valid are ignored, not counted", () => {
  const good = {
    version: 3,
    sha256: h("b"),
    previous_sha256: h("a"),
    state: "failed",
    code: "trap",
    ts: "2026-01-01T00:00:00Z",
  };
  assertEquals(parseRolloutRecord(JSON.stringify(good))?.state, "failed");
  assertEquals(parseRolloutRecord(JSON.stringify({ ...good, state: "exploded" })), null);
  assertEquals(parseRolloutRecord(JSON.stringify({ ...good, sha256: "x" })), null);
  assertEquals(parseRolloutRecord(JSON.stringify({ ...good, code: "x".repeat(500) })), null);
  assertEquals(parseRolloutRecord("{"), null);
  assertEquals(parseRolloutRecord("[]"), null);
});
