/**
 * Errors of the agent manager and how a start failure is classified.
 *
 * @module
 */
import { ArtifactError } from "../artifacts/mod.ts";
import { isSandboxError, SandboxErrorCode } from "../plugins/types.ts";

/** A spec refused by the host owner's local policy (`policy.json`). */
export class PolicyError extends Error {
  override name = "PolicyError";
  readonly code = "local_policy";
  /** The rule that refused it, e.g. `deny.names`, `grants.exec`, `limits.memory_mb`. */
  readonly rule: string;
  constructor(rule: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.rule = rule;
  }
}

/** A compiled-in agent (`builtin:<name>`) this binary does not have. */
export class BuiltinNotFoundError extends Error {
  override name = "BuiltinNotFoundError";
  readonly code = "not_found";
}

/** `invoke` on an agent that is not running, or does not export `mr_command`. */
export class AgentCallError extends Error {
  override name = "AgentCallError";
  constructor(readonly code: "not_found" | "unsupported", message: string) {
    super(message);
  }
}

/** `{code, message}` of any error (sandbox, artifact, plugin, policy, other). */
export function errorInfo(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; message?: unknown; name?: string } | null;
  return {
    code: typeof e?.code === "string" ? e.code : e?.name ?? "error",
    message: typeof e?.message === "string" ? e.message : String(err),
  };
}

const PERMANENT_SANDBOX: string[] = [
  SandboxErrorCode.InvalidModule,
  SandboxErrorCode.CapabilityDenied,
  SandboxErrorCode.MemoryLimit,
];

/**
 * True when retrying the same spec cannot help: a module that is missing, does not match its
 * hash or size, is invalid or asks for more than its grants, or a spec local policy forbids.
 * Download failures and failures of `mr_init` are retried with backoff.
 */
export function isPermanentStartError(err: unknown): boolean {
  if (err instanceof PolicyError || err instanceof BuiltinNotFoundError) return true;
  if (err instanceof ArtifactError) return err.code !== "download_failed";
  // killed repeatedly at its deadline or memory ceiling: stays stopped until the spec changes
  if (isSandboxError(err) && err.quarantined) return true;
  if ((err as { phase?: string })?.phase === "init") return false;
  return isSandboxError(err) && PERMANENT_SANDBOX.includes(err.code);
}
