/**
 * The agent manager: per-agent supervisors, the runtime that wires them to the desired
 * state, rollout outcomes and the host owner's local policy.
 *
 * @module
 */
export { agentView, createAgentManager } from "./manager.ts";
export { createAgentRuntime } from "./runtime.ts";
export { AgentSupervisor } from "./supervisor.ts";
export { cacheKeepSet, selectAgents } from "./select.ts";
export { parseRunningCache, runningCacheSchema } from "./running_cache.ts";
export { checkPolicy, parsePolicy, PolicyFileError, policySchema } from "./policy.ts";
export { watchPolicy } from "./policy_watch.ts";
export {
  createKvRolloutGate,
  failureLimit,
  parseRolloutRecord,
  ROLLOUT_BUCKET,
  rolloutDecision,
} from "./rollout.ts";
export {
  AgentCallError,
  BuiltinNotFoundError,
  errorInfo,
  isPermanentStartError,
  PolicyError,
} from "./errors.ts";
export type { AgentManagerOptions, AgentStatus } from "./manager.ts";
export type { AgentRuntime, AgentRuntimeOptions, AgentView } from "./runtime.ts";
export type {
  SupervisorClock,
  SupervisorDeps,
  SupervisorGovernor,
  SupervisorSnapshot,
  SupervisorState,
} from "./supervisor.ts";
export type { RunningCache } from "./running_cache.ts";
export type { LoadedPolicy, LocalPolicy } from "./policy.ts";
export type { PolicyWatch, PolicyWatchOptions } from "./policy_watch.ts";
export type {
  NodeRecord,
  RolloutDecision,
  RolloutGate,
  RolloutRecord,
  RolloutState,
} from "./rollout.ts";
