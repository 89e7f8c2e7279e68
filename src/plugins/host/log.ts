/**
 * The agent log of a host call: the context's, else one shared per host logger, with the
 * documented rates (limits.ts).
 *
 * @module
 */
import { AgentLog } from "../../log/agent_log.ts";
import type { Logger } from "../../log/logger.ts";
import type { HostCallContext } from "./context.ts";
import * as L from "./limits.ts";

const perLogger = new WeakMap<Logger, AgentLog>();

/** The rate-limited agent log writing to `logger` (one per logger). */
export function agentLogFor(
  ctx: HostCallContext | { logger: Logger; agentLog?: AgentLog },
): AgentLog {
  if (ctx.agentLog) return ctx.agentLog;
  let log = perLogger.get(ctx.logger);
  if (!log) {
    log = new AgentLog(ctx.logger, {
      linesPerSec: L.LOG_LINES_PER_SEC,
      burstLines: L.LOG_BURST_LINES,
      bytesPerSec: L.LOG_BYTES_PER_SEC,
      burstBytes: L.LOG_BURST_BYTES,
      maxMsgBytes: L.MAX_LOG_MSG_BYTES,
    });
    perLogger.set(ctx.logger, log);
  }
  return log;
}
