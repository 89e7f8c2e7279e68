/**
 * Request bodies of the provisioner: read and validated against a zod schema; a refusal
 * names the offending path.
 *
 * @module
 */
import type { z } from "zod";
import { EnrollError } from "./errors.ts";

/** Reads `req`'s JSON body and validates it with `schema` (400 naming the path on failure). */
export async function readBody<S extends z.ZodType>(
  req: Request,
  schema: S,
): Promise<z.infer<S>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await req.text());
  } catch (err) {
    throw new EnrollError(400, "bad_request", "body is not JSON", { cause: err });
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const path = i.path.length ? i.path.map(String).join(".") : "(body)";
    throw new EnrollError(400, "bad_request", `${path}: ${i.message}`);
  }
  return r.data;
}
