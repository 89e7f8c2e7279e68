/**
 * The console API's input schemas (zod): query strings and action bodies. Errors name the
 * parameter (`status: Invalid option…`, `targets.0.node: must be an identifier`).
 *
 * @module
 */
import { z } from "zod";
import { jsonError } from "./http.ts";

/** Identifiers: customers, sites, nodes, agents. */
export const ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const id = z.string().regex(ID, "must be an identifier (a-z0-9_-, 1-63 chars)");

/** `path: message; …` for a zod error. */
export function zodMessage(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

export const fleetQuery = z.object({
  q: z.string().max(200, "at most 200 characters").optional(),
  status: z.enum(["healthy", "degraded", "unhealthy", "offline", "unknown"]).optional(),
  customer: id.optional(),
  sort: z.enum(["customer", "site", "node", "health", "lastSeen", "version", "os", "agents"])
    .optional(),
  dir: z.enum(["asc", "desc"]).optional(),
}).strict();

export const eventsQuery = z.object({
  customer: id.optional(),
  site: id.optional(),
  node: id.optional(),
  type: z.string().max(200).regex(/^[A-Za-z0-9._-]*$/, "letters, digits, '.', '_', '-' only")
    .optional(),
}).strict();

const target = z.object({ customer: id, site: id, node: id }).strict();
const common = {
  targets: z.array(target).min(1).max(500),
  /** How long each target may take to answer. */
  timeout_ms: z.number().int().min(100).max(30_000).optional(),
};
export const actionBody = z.discriminatedUnion("action", [
  z.object({ action: z.literal("ping"), ...common }).strict(),
  z.object({ action: z.literal("health"), ...common }).strict(),
  z.object({
    action: z.literal("invoke"),
    ...common,
    agent: id,
    command: z.string().min(1).max(100),
    args: z.unknown().optional(),
  }).strict(),
]);

export function query<T extends z.ZodType>(url: URL, schema: T): z.infer<T> | Response {
  const raw: Record<string, string> = {};
  for (const [k, v] of url.searchParams) if (v !== "") raw[k] = v;
  const r = schema.safeParse(raw);
  return r.success ? r.data : jsonError(400, "bad_request", zodMessage(r.error));
}

/** A parsed `/api/fleet` query. */
export type FleetQuery = z.infer<typeof fleetQuery>;
/** A parsed live-tail filter. */
export type EventsQuery = z.infer<typeof eventsQuery>;
