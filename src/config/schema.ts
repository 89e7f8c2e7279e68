/**
 * The node configuration file (DESIGN §6), written by `machine-room provision` or by hand.
 * Unknown fields are rejected so typos surface; errors name the path.
 *
 * @module
 */
import { z } from "zod";
import { durationSchema } from "../util/duration.ts";
import { idSchema } from "../util/ids.ts";
import { formatZodError } from "../desired/spec.ts";

/** The config file schema. */
export const configSchema = z.strictObject({
  customer: z.string().min(1).max(128),
  site: idSchema,
  node: idSchema,
  state_dir: z.string().min(1),
  nats: z.strictObject({
    servers: z.array(z.string().min(1)).min(1),
    /** Path to a NATS creds file (user JWT + seed), 0600. */
    creds: z.string().optional(),
    tls: z.strictObject({
      ca: z.string().optional(),
      cert: z.string().optional(),
      key: z.string().optional(),
    }).optional(),
  }),
  trust: z.strictObject({
    /** Public nkeys whose signatures on desired state are accepted. */
    spec_keys: z.array(z.string()).default([]),
  }).default({ spec_keys: [] }),
  s3: z.strictObject({
    endpoint: z.string().optional(),
    region: z.string().default("us-east-1"),
    access_key_id: z.string(),
    secret_access_key: z.string(),
  }).optional(),
  settings: z.strictObject({
    facts_interval: durationSchema.default("5m"),
    heartbeat_interval: durationSchema.default("30s"),
  }).default({ facts_interval: "5m", heartbeat_interval: "30s" }),
  spool: z.strictObject({
    /** Size cap of the spool database's payloads in bytes. */
    max_bytes: z.number().int().positive().default(256 * 1024 * 1024),
    /** Default TTL for spooled messages. */
    ttl: durationSchema.default("7d"),
  }).optional(),
  metrics: z.strictObject({
    exporters: z.array(z.strictObject({
      url: z.string().url(),
      interval: durationSchema.default("30s"),
      /** Only metric names matching one of these regexes are forwarded (all when absent). */
      include: z.array(z.string()).optional(),
    })).default([]),
  }).optional(),
  /** Static role from provisioning; `auto` takes part in leader election. */
  role: z.enum(["auto", "leader", "follower"]).default("auto"),
  election: z.strictObject({ ttl: durationSchema.default("60s") }).optional(),
  provisioner: z.strictObject({
    url: z.string().url(),
    /** The provisioner's public key (the token's issuer): renewal answers must be signed by it. */
    key: z.string().regex(/^A[A-Z2-7]{55}$/).optional(),
    /** Plain http to a non-loopback provisioner was allowed by the token (`--allow-http`). */
    insecure_http: z.boolean().optional(),
    /** When to renew the NATS credentials before their expiry. */
    renew_before: durationSchema.default("24h"),
  }).optional(),
});
/** A parsed node config. */
export type NodeConfig = z.infer<typeof configSchema>;

/** Raised for an unreadable or invalid config; the CLI maps it to exit 2. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(message: string, readonly path?: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Validates a config object; throws {@linkcode ConfigError} naming the field. */
export function parseConfig(input: unknown, source = "config"): NodeConfig {
  const r = configSchema.safeParse(input);
  if (!r.success) throw new ConfigError(`Invalid ${source}: ${formatZodError(r.error)}`, source);
  return r.data;
}

/** Reads and validates a JSON config file. */
export async function loadConfig(path: string): Promise<NodeConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new ConfigError(`Cannot read config "${path}": ${(err as Error).message}`, path, {
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`Invalid JSON in config "${path}": ${(err as Error).message}`, path, {
      cause: err,
    });
  }
  return parseConfig(json, `config "${path}"`);
}
