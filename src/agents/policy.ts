/**
 * The host owner's local policy (`<state_dir>/policy.json` or `run --policy F`): what the
 * vendor may run on this host, enforced over any signed spec. A spec the policy forbids is
 * refused with `agent.v1.rejected` `{code: "local_policy", rule, reason}`; an agent already
 * running that a new policy forbids is stopped.
 *
 * ```json
 * { "deny": { "names": ["nginx-keeper"], "sha256": ["<64 hex>"] },
 *   "grants": { "exec": false, "http_hosts": ["api.vendor.example"], "file_roots": ["/var/lib/app"] },
 *   "limits": { "memory_mb": 64, "fuel": 2000000000 } }
 * ```
 *
 * Every field is optional; an absent field does not restrict. `http_hosts` entries are a
 * host (any port) or `host:port`. `file_roots` are absolute directories; every `files`
 * pattern of a grant must lie under one of them.
 *
 * @module
 */
import { z } from "zod";
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { type AgentSpec, formatZodError } from "../desired/spec.ts";
import { PolicyError } from "./errors.ts";

/** The policy file's schema. */
export const policySchema = z.strictObject({
  deny: z.strictObject({
    names: z.array(z.string()).default([]),
    sha256: z.array(
      z.string().regex(/^[0-9a-f]{64}$/, {
        message: "Expected 64 lowercase hex digits",
      }),
    ).default([]),
  }).default({ names: [], sha256: [] }),
  grants: z.strictObject({
    /** `false`: no agent may use `mr_exec`. */
    exec: z.boolean().optional(),
    http_hosts: z.array(
      z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, {
        message: 'Expected "host" or "host:port"',
      }),
    ).optional(),
    file_roots: z.array(z.string().regex(/^\//, { message: "Expected an absolute path" }))
      .optional(),
  }).default({}),
  limits: z.strictObject({
    memory_mb: z.number().int().positive().optional(),
    fuel: z.number().int().positive().optional(),
  }).default({}),
});
/** A parsed local policy. */
export type LocalPolicy = z.infer<typeof policySchema>;

/** A policy file that cannot be used; the message names the file and the field. */
export class PolicyFileError extends Error {
  override name = "PolicyFileError";
}

/** A loaded policy and the sha256 of its bytes (reported in facts). */
export interface LoadedPolicy {
  policy: LocalPolicy;
  sha256: string;
  path: string;
}

/** Parses policy text; throws {@linkcode PolicyFileError} naming `path` and the zod path. */
export function parsePolicy(text: string, path: string): LoadedPolicy {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PolicyFileError(`${path}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  const r = policySchema.safeParse(json);
  if (!r.success) throw new PolicyFileError(`${path}: ${formatZodError(r.error)}`);
  return { policy: r.data, sha256: createHash("sha256").update(text).digest("hex"), path };
}

function under(pattern: string, root: string): boolean {
  if (pattern.split("/").includes("..")) return false;
  const p = posix.normalize(pattern);
  const r = posix.normalize(root).replace(/\/+$/, "");
  return r === "" ? p.startsWith("/") : p === r || p.startsWith(r + "/");
}

/**
 * Throws {@linkcode PolicyError} (with the rule's name) when `policy` forbids `spec`.
 *
 * @example
 * ```ts
 * checkPolicy(spec, { deny: { names: ["x"], sha256: [] }, grants: { exec: false }, limits: {} });
 * ```
 */
export function checkPolicy(spec: AgentSpec, policy: LocalPolicy): void {
  const deny = (rule: string, why: string) => {
    throw new PolicyError(rule, `local policy ${rule}: ${why}`);
  };
  if (policy.deny.names.includes(spec.name)) deny("deny.names", `agent "${spec.name}" is denied`);
  if (policy.deny.sha256.includes(spec.wasm.sha256)) {
    deny("deny.sha256", `module ${spec.wasm.sha256} is denied`);
  }
  const g = policy.grants;
  if (g.exec === false && spec.grants.exec.length > 0) {
    deny("grants.exec", `agent "${spec.name}" asks for exec and this host allows none`);
  }
  if (g.http_hosts) {
    for (const hp of spec.grants.http) {
      const host = hp.slice(0, hp.lastIndexOf(":"));
      if (!g.http_hosts.includes(hp) && !g.http_hosts.includes(host)) {
        deny("grants.http_hosts", `http to "${hp}" is not in the allowed hosts`);
      }
    }
  }
  if (g.file_roots) {
    for (const p of [...spec.grants.files.read, ...spec.grants.files.write]) {
      if (!g.file_roots.some((r) => under(p, r))) {
        deny("grants.file_roots", `file path "${p}" is not under an allowed root`);
      }
    }
  }
  const l = policy.limits;
  if (l.memory_mb !== undefined && spec.limits.memory_mb > l.memory_mb) {
    deny("limits.memory_mb", `memory ${spec.limits.memory_mb} MiB is over ${l.memory_mb} MiB`);
  }
  if (l.fuel !== undefined && spec.limits.fuel > l.fuel) {
    deny("limits.fuel", `fuel ${spec.limits.fuel} is over ${l.fuel}`);
  }
}
