/**
 * Small checks shared by the host functions.
 *
 * @module
 */
import type { HostCallContext } from "./context.ts";
import { HostCallError } from "./errors.ts";

const enc = new TextEncoder();

/** Bytes of `v` as JSON. */
export function jsonBytes(v: unknown): number {
  const s = JSON.stringify(v) ?? "null";
  // cheap upper bound first: UTF-8 is at most 3 bytes per UTF-16 unit
  return s.length * 3 < 1024 ? s.length : enc.encode(s).length;
}

/** Throws `payload_too_large` when `n` > `limit`. */
export function maxBytes(what: string, n: number, limit: number): void {
  if (n > limit) {
    throw new HostCallError(
      "payload_too_large",
      `${what} is ${n} bytes, more than the limit of ${limit} bytes`,
    );
  }
}

/** Writes the audit line and throws `capability_denied` with `message`. */
export function deny(
  ctx: HostCallContext,
  fn: string,
  message: string,
  detail: Record<string, unknown>,
): never {
  ctx.logger.audit("capability denied", { agent: ctx.agent, host_function: fn, ...detail });
  throw new HostCallError("capability_denied", message);
}

/** Milliseconds left before the call's deadline, capped by `requested`. */
export function remainingMs(ctx: HostCallContext, requested?: number): number {
  const left = Math.max(1, ctx.deadline - Date.now());
  return requested === undefined ? left : Math.min(left, Math.max(1, requested));
}
