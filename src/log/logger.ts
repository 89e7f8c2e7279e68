/**
 * Structured JSON-lines logging. Every line is one JSON object on stderr with
 * `ts`, `level`, `msg` and the caller's fields; the core keys (`ts`, `level`, `msg`,
 * `audit`) are always the logger's own, whatever the fields hold. Secrets are redacted by key name
 * and by shape (nkey seeds, JWT-looking creds) before anything is written.
 *
 * @module
 */

/** Log levels in increasing severity. */
export const LogLevels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
/** A log level name. */
export type LogLevel = keyof typeof LogLevels;

/** Free-form structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** A structured logger; library code receives one and never uses `console`. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A security-relevant decision (capability denials, enrolment): always written at `warn` or above. */
  audit(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Minimum level written. @default {"info"} (or `MR_LOG_LEVEL`) */
  level?: LogLevel;
  /** Where a finished line goes. @default {writes to stderr} */
  write?: (line: string) => void;
  /** Fields on every line. */
  fields?: LogFields;
  /** Clock, injectable for tests. @default {() => new Date()} */
  now?: () => Date;
}

const SECRET_KEY = /seed|secret|password|passwd|creds|credential|private|token|authorization|jwt/i;
// nkey seeds start with "S" + type letter and are 58 base32 chars; user JWTs are three base64url parts.
const SEED_SHAPE = /\bS[OAUNC][A-Z2-7]{56}\b/g;
const JWT_SHAPE = /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b/g;

/** Replaces secret-looking values in `value` (deeply) with `"[redacted]"`. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8) return "[deep]";
  if (typeof value === "string") {
    return value.replace(SEED_SHAPE, "[redacted-seed]").replace(JWT_SHAPE, "[redacted-jwt]");
  }
  if (value instanceof Error) {
    return {
      name: value.name,
      message: redact(value.message, depth + 1),
      ...(value.cause ? { cause: redact(value.cause, depth + 1) } : {}),
    };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] =
        SECRET_KEY.test(k) && v !== undefined && typeof v !== "boolean" && typeof v !== "number"
          ? "[redacted]"
          : redact(v, depth + 1);
    }
    return out;
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

const encoder = new TextEncoder();
function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

function envLevel(): LogLevel | undefined {
  try {
    const v = Deno.env.get("MR_LOG_LEVEL");
    return v && v in LogLevels ? v as LogLevel : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Creates a JSON-lines logger.
 *
 * @example
 * ```ts
 * const log = createLogger({ level: "debug" }).child({ component: "spool" });
 * log.info("spool opened", { path: "/var/lib/mr/spool.db" });
 * ```
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = LogLevels[options.level ?? envLevel() ?? "info"];
  const write = options.write ?? writeStderr;
  const now = options.now ?? (() => new Date());
  const base = options.fields ?? {};
  const emit = (level: LogLevel, msg: string, fields?: LogFields, auditLine = false) => {
    if (LogLevels[level] < min) return;
    const ts = now().toISOString();
    const line = redact({
      ts,
      level,
      msg,
      ...(auditLine ? { audit: true } : {}),
      ...base,
      ...fields,
    }) as Record<string, unknown>;
    // the core keys are the logger's: no field (base or per line) may overwrite them
    line.ts = ts;
    line.level = level;
    line.msg = redact(msg);
    if (auditLine) line.audit = true;
    else delete line.audit;
    write(JSON.stringify(line));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    audit: (m, f) => emit("warn", m, f, true),
    child: (fields) =>
      createLogger({ ...options, level: levelName(min), fields: { ...base, ...fields } }),
  };
}

function levelName(n: number): LogLevel {
  return (Object.entries(LogLevels).find(([, v]) => v === n)?.[0] ?? "info") as LogLevel;
}

/** A logger that writes nothing (tests, `--quiet`). */
export const silentLogger: Logger = createLogger({ level: "silent", write: () => {} });
