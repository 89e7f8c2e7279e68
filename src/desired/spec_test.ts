import { assert, assertEquals, assertThrows } from "@std/assert";
import { parseGrants, parseSpec } from "./spec.ts";

const hex = "a".repeat(64);
const agent = {
  name: "nginx-keeper",
  wasm: { sha256: hex, size: 10, url: `s3://b/sha256/${hex}.wasm` },
};

Deno.test("spec - minimal agent gets defaults", () => {
  const s = parseSpec({ version: 1, agents: [agent] });
  const a = s.agents[0]!;
  assertEquals(a.grants.exec, []);
  assertEquals(a.grants.events, false);
  assertEquals(a.limits.timeout_ms, 5000);
  assertEquals(a.leader_only, false);
});

Deno.test("spec - unknown fields and bad values name the path", () => {
  assertThrows(() => parseSpec({ version: 1, agents: [{ ...agent, extra: 1 }] }), /agents\.0/);
  assertThrows(
    () => parseSpec({ version: 1, agents: [{ ...agent, wasm: { ...agent.wasm, sha256: "zz" } }] }),
    /agents\.0\.wasm\.sha256/,
  );
  assertThrows(() => parseSpec({ version: 0, agents: [] }), /version/);
  assertThrows(() => parseSpec({ version: 2, agents: [agent, agent] }), /Duplicate agent name/);
});

Deno.test("spec - grants validate host:port and reject unknown capabilities", () => {
  assert(parseGrants({ http: ["api.example:443"] }).http.length === 1);
  assertThrows(() => parseGrants({ http: ["api.example"] }), /http\.0/);
  assertThrows(() => parseGrants({ sudo: true }), /Invalid grants/);
});

Deno.test("spec - builtin:<name> URLs, rollout max_failures and removed lists are validated", () => {
  const withUrl = (url: string) => ({
    version: 1,
    agents: [{ ...agent, wasm: { ...agent.wasm, url } }],
  });
  assertEquals(
    parseSpec(withUrl("builtin:acme-keeper")).agents[0]!.wasm.url,
    "builtin:acme-keeper",
  );
  for (const bad of ["builtin:", "builtin:../etc/passwd", "builtin:Acme", "file:///x.wasm"]) {
    assertThrows(() => parseSpec(withUrl(bad)), /agents\.0\.wasm\.url/);
  }
  const roll = (max_failures: unknown) => ({
    version: 1,
    agents: [{ ...agent, rollout: { governor: "rollout", capacity: 2, max_failures } }],
  });
  assertEquals(parseSpec(roll(2)).agents[0]!.rollout!.max_failures, 2);
  assertEquals(parseSpec(roll("25%")).agents[0]!.rollout!.auto_rollback, false);
  for (const bad of [0, -1, 1.5, "0%", "150%", "x%", "2"]) {
    assertThrows(() => parseSpec(roll(bad)), /agents\.0\.rollout\.max_failures/);
  }
  assertEquals(parseSpec({ version: 1, agents: [], removed: ["a"] }).removed, ["a"]);
  assertThrows(() => parseSpec({ version: 1, agents: [], removed: ["../x"] }), /removed\.0/);
});
