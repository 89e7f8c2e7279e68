/**
 * The WASM agent sandbox (DESIGN §5): load, instrument and run Extism agents with only
 * the capabilities their grants allow.
 *
 * @module
 */
export { createSandbox } from "./sandbox.ts";
export { checkLoadable, HOST_FUNCTIONS, inspectModule, sha256Hex } from "./abi.ts";
export { createPrintingServices } from "./printing_services.ts";
export { HostCallError, HostErrorCode, kvKeyAllowed } from "./host_functions.ts";
export { HOST_FUNCTION_TABLE } from "./host/table.ts";
export { agentLogFor } from "./host/log.ts";
export * as BoundaryLimits from "./host/limits.ts";
export { INSTRUMENTER_VERSION, instrumentModule } from "./instrument.ts";
export { instrumentCached } from "./instrument_cache.ts";
export { FUEL_GLOBAL } from "./protocol.ts";
export { globToRegExp, matchesAny } from "./paths.ts";
export { openStateStore, StateQuotaError } from "./state.ts";
export {
  isPluginError,
  isSandboxError,
  PluginError,
  SandboxError,
  SandboxErrorCode,
} from "./types.ts";

export type { PrintingServicesOptions } from "./printing_services.ts";
export type { InstrumentOptions } from "./instrument.ts";
export type { StateQuota, StateStore } from "./state.ts";
export type { HostFunction } from "./host/table.ts";
export type { HostCallContext } from "./host_functions.ts";
export type { AgentPlugin, LoadOptions, ModuleInfo, Sandbox, SandboxOptions } from "./types.ts";
