/**
 * Request bodies of the provisioner: counted while they stream in (never more than the cap
 * is buffered: 413 past it), parsed as JSON and validated against a zod schema; a refusal
 * names the offending path.
 *
 * @module
 */
import type { z } from "zod";
import { EnrollError } from "./errors.ts";

/** The largest request body accepted (bytes). */
export const MAX_BODY_BYTES = 64 * 1024;

const tooLarge = (max: number) =>
  new EnrollError(413, "too_large", `request body is larger than ${max} bytes`);

/** Reads at most `max` bytes of `req`'s body as text (413 past it). */
export async function readLimited(req: Request, max = MAX_BODY_BYTES): Promise<string> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > max) throw tooLarge(max);
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge(max);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(all);
  } catch (err) {
    throw new EnrollError(400, "bad_request", "body is not UTF-8", { cause: err });
  }
}

/** Reads `req`'s JSON body (capped) and validates it with `schema` (400 naming the path). */
export async function readBody<S extends z.ZodType>(
  req: Request,
  schema: S,
  max = MAX_BODY_BYTES,
): Promise<z.infer<S>> {
  const text = await readLimited(req, max);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
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
