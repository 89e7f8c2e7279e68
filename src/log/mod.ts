/** Structured logging. @module */
export { createLogger, LogLevels, redact, silentLogger } from "./logger.ts";
export type { LogFields, Logger, LoggerOptions, LogLevel } from "./logger.ts";
export { AgentLog } from "./agent_log.ts";
export type { AgentLogOptions } from "./agent_log.ts";
