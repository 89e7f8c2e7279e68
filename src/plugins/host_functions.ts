/**
 * Main-thread dispatcher of the ABI v1 host functions. Each function is described once in
 * host/table.ts (`{ name, grant, input schema, run }`); here a call is size-checked,
 * parsed as JSON, checked against the grant, validated by its zod schema (errors name the
 * field) and run. Failures become `{"error":{"code","message"}}` objects for the plugin,
 * never exceptions.
 *
 * @module
 */
import { formatZodError } from "../desired/spec.ts";
import type { HostCallContext } from "./host/context.ts";
import { deny } from "./host/checks.ts";
import { HostCallError } from "./host/errors.ts";
import { MAX_HOST_INPUT_BYTES } from "./host/limits.ts";
import { agentLogFor } from "./host/log.ts";
import { HOST_FUNCTIONS_BY_NAME } from "./host/table.ts";

export { HostCallError, HostErrorCode } from "./host/errors.ts";
export type { HostCallContext } from "./host/context.ts";
export { prepareHostContext } from "./host/context.ts";
export { kvKeyAllowed } from "./host/kv.ts";
export { HOST_OUTPUT_CAP } from "./host/limits.ts";

function parseObject(input: string): Record<string, unknown> {
  if (
    input.length > MAX_HOST_INPUT_BYTES / 3 &&
    new TextEncoder().encode(input).length > MAX_HOST_INPUT_BYTES
  ) {
    throw new HostCallError(
      "payload_too_large",
      `Input is more than the limit of ${MAX_HOST_INPUT_BYTES} bytes`,
    );
  }
  let v: unknown;
  try {
    v = input === "" ? {} : JSON.parse(input);
  } catch {
    throw new HostCallError("invalid_input", "Input is not JSON");
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) {
    throw new HostCallError("invalid_input", "Input must be a JSON object");
  }
  return v as Record<string, unknown>;
}

/** Runs host function `fn` for the plugin; always resolves with JSON text. */
export async function runHostFunction(
  ctx: HostCallContext,
  fn: string,
  input: string,
): Promise<string> {
  try {
    const def = HOST_FUNCTIONS_BY_NAME.get(fn);
    if (!def) throw new HostCallError("not_found", `Unknown host function: "${fn}"`);
    const raw = parseObject(input);
    if (!def.allowed(ctx.grants)) deny(ctx, fn, `${fn} is not granted`, {});
    const parsed = def.input.safeParse(raw);
    if (!parsed.success) {
      throw new HostCallError("invalid_input", `Invalid input: ${formatZodError(parsed.error)}`);
    }
    const out = await def.run(ctx, parsed.data);
    return JSON.stringify(out ?? {});
  } catch (err) {
    const e = err instanceof HostCallError
      ? err
      : new HostCallError("io_error", err instanceof Error ? err.message : String(err));
    if (!(err instanceof HostCallError)) {
      ctx.logger.warn("host function failed", { agent: ctx.agent, host_function: fn, err });
    }
    return JSON.stringify({ error: { code: e.code, message: e.message } });
  }
}

/**
 * A log line from the plugin's Extism kernel (`log_info` …): written for the agent with the
 * host's core keys, nested fields and the agent's rate limit, like `mr_log`.
 */
export function pluginLog(
  ctx: HostCallContext,
  level: string,
  msg: string,
  fields?: Record<string, unknown>,
  hostFields?: Record<string, string>,
): boolean {
  return agentLogFor(ctx).write(ctx.agent, level, msg, fields, hostFields);
}
