/**
 * Log lines written on behalf of agents (`mr_log`, Extism `log_*`). The host owns the
 * line: `ts`, `level`, `msg`, `agent` and `audit` are set here and by the logger only; what
 * the agent passes as fields is nested under `fields` (so it can never overwrite a core
 * key or forge an audit line or another agent's line). Each agent has a token bucket for
 * lines and one for bytes; a line over either is dropped and counted.
 *
 * @module
 */
import type { Logger, LogLevel } from "./logger.ts";

/** Rates of {@linkcode AgentLog}. */
export interface AgentLogOptions {
  linesPerSec: number;
  burstLines: number;
  bytesPerSec: number;
  burstBytes: number;
  /** Longest `msg` kept (longer is truncated). */
  maxMsgBytes: number;
  /** Monotonic clock in ms. @default {performance.now} */
  now?: () => number;
}

interface Bucket {
  lines: number;
  bytes: number;
  at: number;
  dropped: number;
}

const enc = new TextEncoder();
const LEVELS = new Set(["debug", "info", "warn", "error"]);

/** Rate-limited agent log lines over a host {@linkcode Logger}. */
export class AgentLog {
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;
  #dropped = 0;

  constructor(readonly logger: Logger, readonly options: AgentLogOptions) {
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Writes one line for `agent`; false when the agent is over its rate (the line is dropped
   * and counted). `level` other than debug/info/warn/error becomes info.
   */
  write(
    agent: string,
    level: string,
    msg: string,
    fields?: Record<string, unknown>,
    /** Keys the host itself sets on the line (e.g. `stream` of WASI output). */
    hostFields?: Record<string, string>,
  ): boolean {
    const o = this.options;
    let text = String(msg);
    if (text.length > o.maxMsgBytes / 4 && enc.encode(text).length > o.maxMsgBytes) {
      text = new TextDecoder().decode(enc.encode(text).subarray(0, o.maxMsgBytes)) + "…";
    }
    const fieldsText = fields && Object.keys(fields).length ? JSON.stringify(fields) : "";
    const size = text.length + fieldsText.length + 64;
    const t = this.#now();
    let b = this.#buckets.get(agent);
    if (!b) {
      b = { lines: o.burstLines, bytes: o.burstBytes, at: t, dropped: 0 };
      this.#buckets.set(agent, b);
    }
    const dt = Math.max(0, t - b.at) / 1000;
    b.at = t;
    b.lines = Math.min(o.burstLines, b.lines + dt * o.linesPerSec);
    b.bytes = Math.min(o.burstBytes, b.bytes + dt * o.bytesPerSec);
    if (b.lines < 1 || b.bytes < size) {
      b.dropped++;
      this.#dropped++;
      return false;
    }
    b.lines -= 1;
    b.bytes -= size;
    const lvl = (LEVELS.has(level) ? level : "info") as Exclude<LogLevel, "silent">;
    this.logger[lvl](text, { ...hostFields, agent, ...(fieldsText ? { fields } : {}) });
    return true;
  }

  /** Lines dropped for `agent`, or for all agents. */
  dropped(agent?: string): number {
    return agent === undefined ? this.#dropped : this.#buckets.get(agent)?.dropped ?? 0;
  }

  /** Forgets an agent's bucket (it was removed); its drops stay in the total. */
  forget(agent: string): void {
    this.#buckets.delete(agent);
  }
}
