import { assertEquals, assertThrows } from "@std/assert";
import { agentSpecSchema } from "../desired/spec.ts";
import { checkPolicy, parsePolicy, PolicyFileError } from "./policy.ts";
import { PolicyError } from "./errors.ts";

const spec = (extra: Record<string, unknown> = {}) =>
  agentSpecSchema.parse({
    name: "keeper",
    wasm: { sha256: "a".repeat(64), size: 1, url: "s3://b/x.wasm" },
    ...extra,
  });
const policy = (doc: unknown) => parsePolicy(JSON.stringify(doc), "/etc/mr/policy.json").policy;
const rule = (fn: () => void) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof PolicyError) return err.rule;
    throw err;
  }
  return null;
};

Deno.test("policy - deny by name and by hash", () => {
  assertEquals(
    rule(() => checkPolicy(spec(), policy({ deny: { names: ["keeper"] } }))),
    "deny.names",
  );
  assertEquals(
    rule(() => checkPolicy(spec(), policy({ deny: { sha256: ["a".repeat(64)] } }))),
    "deny.sha256",
  );
  assertEquals(rule(() => checkPolicy(spec(), policy({ deny: { names: ["other"] } }))), null);
});

Deno.test("policy - grant caps: exec, http hosts, file roots", () => {
  const exec = spec({ grants: { exec: [["systemctl", "status"]] } });
  assertEquals(rule(() => checkPolicy(exec, policy({ grants: { exec: false } }))), "grants.exec");
  assertEquals(rule(() => checkPolicy(spec(), policy({ grants: { exec: false } }))), null);
  const http = spec({ grants: { http: ["api.vendor.example:443", "evil.example:80"] } });
  assertEquals(
    rule(() => checkPolicy(http, policy({ grants: { http_hosts: ["api.vendor.example"] } }))),
    "grants.http_hosts",
  );
  assertEquals(
    rule(() =>
      checkPolicy(
        http,
        policy({ grants: { http_hosts: ["api.vendor.example", "evil.example:80"] } }),
      )
    ),
    null,
  );
  const files = (p: string) => spec({ grants: { files: { read: [p], write: [] } } });
  const roots = policy({ grants: { file_roots: ["/var/lib/app"] } });
  assertEquals(rule(() => checkPolicy(files("/var/lib/app/**"), roots)), null);
  assertEquals(
    rule(() => checkPolicy(files("/var/lib/application/x"), roots)),
    "grants.file_roots",
  );
  assertEquals(
    rule(() => checkPolicy(files("/var/lib/app/../../etc/shadow"), roots)),
    "grants.file_roots",
  );
  assertEquals(rule(() => checkPolicy(files("/etc/**"), roots)), "grants.file_roots");
});

Deno.test("policy - memory and fuel ceilings", () => {
  const big = spec({ limits: { memory_mb: 128, fuel: 10 } });
  assertEquals(
    rule(() => checkPolicy(big, policy({ limits: { memory_mb: 64 } }))),
    "limits.memory_mb",
  );
  assertEquals(rule(() => checkPolicy(big, policy({ limits: { fuel: 5 } }))), "limits.fuel");
  assertEquals(
    rule(() => checkPolicy(big, policy({ limits: { memory_mb: 128, fuel: 10 } }))),
    null,
  );
});

Deno.test("policy - malformed files name the path and the field", () => {
  const e = assertThrows(
    () => parsePolicy('{"grants":{"exec":"no"}}', "/etc/mr/policy.json"),
    PolicyFileError,
  );
  assertEquals(e.message.startsWith("/etc/mr/policy.json: grants.exec:"), true);
  assertThrows(() => parsePolicy("{", "/p.json"), PolicyFileError, "/p.json: not JSON");
  assertThrows(() => parsePolicy('{"denyy":{}}', "/p.json"), PolicyFileError, "/p.json");
});
