/**
 * Public API of the Machine Room edge library. SaaS builders import this to build
 * their own binary with extra commands and compiled-in agents.
 *
 * @module
 */
export { buildCli, runCli, VERSION } from "./cli/mod.ts";
export { readAgentModule } from "./cli/context.ts";
export { CliError, ExitCode, exitCodeFor, UsageError } from "./cli/errors.ts";
export { createLogger, redact, silentLogger } from "./log/mod.ts";
export { ConfigError, configSchema, loadConfig, parseConfig } from "./config/schema.ts";
export {
  agentSpecSchema,
  formatZodError,
  grantsSchema,
  limitsSchema,
  parseGrants,
  parseSpec,
  specSchema,
} from "./desired/spec.ts";
export {
  createPrintingServices,
  createSandbox,
  HostCallError,
  inspectModule,
  isPluginError,
  isSandboxError,
  PluginError,
  SandboxError,
  SandboxErrorCode,
} from "./plugins/mod.ts";
export { formatDuration, parseDuration } from "./util/duration.ts";
export { ulid } from "./util/ulid.ts";

export type { BuildCliOptions, Cli } from "./cli/mod.ts";
export type { AgentSource, CliContext } from "./cli/context.ts";
export type { Logger, LoggerOptions, LogLevel } from "./log/mod.ts";
export type { NodeConfig } from "./config/schema.ts";
export type { AgentSpec, Grants, Limits, Spec } from "./desired/spec.ts";
export type {
  AgentPlugin,
  LoadOptions,
  ModuleInfo,
  Sandbox,
  SandboxOptions,
} from "./plugins/types.ts";
export type { HostServices } from "./host/services.ts";
