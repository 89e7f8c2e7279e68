/**
 * The desired-state spec (DESIGN §4): zod schemas are the single source of truth;
 * types are inferred. Unknown fields are rejected everywhere and errors name the path.
 *
 * @module
 */
import { z } from "zod";
import { durationSchema } from "../util/duration.ts";
import { idSchema } from "../util/ids.ts";

const hostPort = z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, {
  message: 'Expected "host:port"',
});

/** Capabilities an agent is granted. Absent means denied. */
export const grantsSchema = z.strictObject({
  /** Exact argv vectors `mr_exec` may run. */
  exec: z.array(z.array(z.string()).min(1)).default([]),
  /** `host:port` pairs `mr_http` may reach. */
  http: z.array(hostPort).default([]),
  /** Glob patterns (`*` one segment, `**` any depth) checked after resolving `..` and symlinks. */
  files: z.strictObject({
    read: z.array(z.string()).default([]),
    write: z.array(z.string()).default([]),
  }).default({ read: [], write: [] }),
  /** KV key patterns (`*` one token, `>` the rest) `mr_kv_get` may read. */
  kv_read: z.array(z.string()).default([]),
  /** Submission subjects (`mr_submit`). */
  submit: z.array(z.string()).default([]),
  /** Governor names (`mr_governor`). */
  governors: z.array(idSchema).default([]),
  /** May emit events (`mr_event`). */
  events: z.boolean().default(false),
  /** May read facts (`mr_facts`). */
  facts: z.boolean().default(false),
  /** May publish metrics (`mr_metric`). Extension of DESIGN §4. */
  metrics: z.boolean().default(false),
});
/** Parsed grants (defaults applied). */
export type Grants = z.infer<typeof grantsSchema>;
/** Grants as written in a spec (all optional). */
export type GrantsInput = z.input<typeof grantsSchema>;

/** Sandbox limits per agent. */
export const limitsSchema = z.strictObject({
  /** Fuel units per call (one per loop iteration / function entry). */
  fuel: z.number().int().positive().default(1_000_000_000),
  /** Linear memory cap in MiB (Extism maxPages). */
  memory_mb: z.number().int().min(1).max(4096).default(32),
  /** Wall-clock deadline per call, including host-function time. */
  timeout_ms: z.number().int().min(1).max(3_600_000).default(5_000),
  /** Largest output a call may return. */
  output_max_bytes: z.number().int().positive().default(1_048_576),
});
/** Parsed limits (defaults applied). */
export type Limits = z.infer<typeof limitsSchema>;

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
/** One `match` condition: a value (equality) or an operator object. */
export const matchConditionSchema = z.union([
  scalar,
  z.strictObject({
    eq: scalar.optional(),
    ne: scalar.optional(),
    in: z.array(scalar).optional(),
    gte: z.number().optional(),
    lte: z.number().optional(),
    regex: z.string().optional(),
  }),
]);
/** A match expression: dotted fact path → condition. */
export const matchSchema = z.record(z.string(), matchConditionSchema);

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, {
  message: "Expected 64 lowercase hex digits",
});

/**
 * A staged rollout: swap only while holding a slot of `governor` (at most `capacity` nodes
 * at once). Each node records its outcome in KV `MR_ROLLOUT`; once `max_failures` nodes
 * (a count, or `"N%"` of the nodes that reported on the agent) failed on a hash, nodes
 * still waiting do not take it, and with `auto_rollback` the failed nodes go back to the
 * previous hash.
 */
export const rolloutSchema = z.strictObject({
  governor: idSchema,
  capacity: z.number().int().positive(),
  max_failures: z.union([
    z.number().int().positive(),
    z.string().regex(/^([1-9][0-9]?|100)%$/, { message: 'Expected a count or "N%" (1-100)' }),
  ]).optional(),
  auto_rollback: z.boolean().default(false),
});
/** A parsed rollout block. */
export type Rollout = z.infer<typeof rolloutSchema>;

/** One agent in the spec. */
export const agentSpecSchema = z.strictObject({
  name: idSchema,
  wasm: z.strictObject({
    sha256: sha256Hex,
    size: z.number().int().positive(),
    /** Where to download it, or `builtin:<name>` for an agent compiled into the binary. */
    url: z.string().regex(/^((s3|https?):\/\/|builtin:[a-z0-9][a-z0-9_-]{0,62}$)/, {
      message: "Expected an s3://, https:// or http:// URL or builtin:<name>",
    }),
  }),
  config: z.unknown().optional(),
  grants: grantsSchema.default(grantsSchema.parse({})),
  triggers: z.strictObject({
    interval: durationSchema.optional(),
    on_change: z.boolean().default(false),
  }).default({ on_change: false }),
  limits: limitsSchema.default(limitsSchema.parse({})),
  match: matchSchema.optional(),
  leader_only: z.boolean().default(false),
  rollout: rolloutSchema.optional(),
});
/** A parsed agent spec. */
export type AgentSpec = z.infer<typeof agentSpecSchema>;

/** A desired-state KV key: `site.<site>` or `node.<site>.<node>`. */
export const targetSchema = z.string().regex(
  /^(site\.[a-z0-9][a-z0-9_-]{0,62}|node\.[a-z0-9][a-z0-9_-]{0,62}\.[a-z0-9][a-z0-9_-]{0,62})$/,
  { message: 'Expected "site.<site>" or "node.<site>.<node>"' },
);

/** The whole desired-state document. */
export const specSchema = z.strictObject({
  version: z.number().int().positive(),
  /**
   * The customer this spec is for. Nodes refuse a spec without it or naming another
   * customer (the vendor's signing key signs every customer's specs).
   */
  customer: idSchema.optional(),
  /**
   * The KV key this spec is for. Nodes refuse a spec without it or read from another key
   * (a valid `site.*` spec replayed into a `node.*` key).
   */
  target: targetSchema.optional(),
  agents: z.array(agentSpecSchema).superRefine((agents, ctx) => {
    const seen = new Set<string>();
    agents.forEach((a, i) => {
      if (seen.has(a.name)) {
        ctx.addIssue({
          code: "custom",
          path: [i, "name"],
          message: `Duplicate agent name: "${a.name}"`,
        });
      }
      seen.add(a.name);
    });
  }),
  /**
   * Agents removed at this key (`mr-saas unpublish`): a node key's list also hides the
   * site key's agent of that name on that node.
   */
  removed: z.array(idSchema).optional(),
  settings: z.strictObject({
    facts_interval: durationSchema.optional(),
    heartbeat_interval: durationSchema.optional(),
  }).optional(),
});
/** A parsed desired-state spec. */
export type Spec = z.infer<typeof specSchema>;

/** Formats a zod error as `path: message; path: message` (paths dotted, e.g. `agents.0.wasm.sha256`). */
export function formatZodError(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join(
    "; ",
  );
}

/** Parses grants from JSON-ish input; throws `TypeError` naming the path. */
export function parseGrants(input: unknown): Grants {
  const r = grantsSchema.safeParse(input ?? {});
  if (!r.success) throw new TypeError(`Invalid grants: ${formatZodError(r.error)}`);
  return r.data;
}

/** Parses a spec; throws `TypeError` naming the path. */
export function parseSpec(input: unknown): Spec {
  const r = specSchema.safeParse(input);
  if (!r.success) throw new TypeError(`Invalid spec: ${formatZodError(r.error)}`);
  return r.data;
}
