/**
 * What a host call knows about its caller.
 *
 * @module
 */
import type { Grants } from "../../desired/spec.ts";
import type { HostServices } from "../../host/services.ts";
import type { AgentLog } from "../../log/agent_log.ts";
import type { Logger } from "../../log/logger.ts";
import type { StateStore } from "../state.ts";
import { type ResolvedExec, resolveExecGrants } from "./exec.ts";

/** The caller of a host function. */
export interface HostCallContext {
  agent: string;
  grants: Grants;
  services: HostServices;
  logger: Logger;
  state: () => StateStore;
  /** Aborted when the calling export's deadline passes. */
  signal: AbortSignal;
  /** Epoch ms deadline of the calling export. */
  deadline: number;
  /** `grants.exec` with each program resolved (set by {@linkcode prepareHostContext}). */
  execGrants?: ResolvedExec[];
  /** The rate-limited agent log (default: one per host logger). */
  agentLog?: AgentLog;
}

/** The resolved exec grants of `ctx` (resolving them now if the load did not). */
export function execGrantsOf(ctx: HostCallContext): ResolvedExec[] {
  return ctx.execGrants ??= resolveExecGrants(ctx.grants.exec);
}

/**
 * Applies the spec to a new context: resolves each granted `argv[0]` to an absolute path
 * now (so `mr_exec` never searches the daemon's `PATH` at call time).
 */
export function prepareHostContext(ctx: HostCallContext): HostCallContext {
  ctx.execGrants = resolveExecGrants(ctx.grants.exec);
  return ctx;
}
