import { assertEquals, assertThrows } from "@std/assert";
import { agentSpecSchema } from "../desired/spec.ts";
import { cacheKeepSet, pushHistory, selectAgents } from "./select.ts";
import { failureLimit, rolloutHalted, type RolloutRecord } from "./rollout.ts";
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

Deno.test("rollout - max_failures as a count or a percentage of the reporting nodes", () => {
  assertEquals(failureLimit(2, 6), 2);
  assertEquals(failureLimit("34%", 6), 3);
  assertEquals(failureLimit("1%", 6), 1);
  assertEquals(failureLimit(undefined, 6), Infinity);
  const rec = (sha: string, state: RolloutRecord["state"]): RolloutRecord => ({
    version: 2,
    sha256: sha,
    previous_sha256: null,
    state,
    code: null,
    ts: "",
  });
  const records = [rec(h("b"), "failed"), rec(h("b"), "failed"), rec(h("a"), "healthy")];
  assertEquals(rolloutHalted(records, h("b"), 2).halted, true);
  assertEquals(rolloutHalted(records, h("b"), 3).halted, false);
  assertEquals(rolloutHalted(records, h("a"), 1).halted, false);
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
