/**
 * Limits the host enforces at the host-function boundary (plugins-sdk/ABI.md "Limits at the
 * boundary" is generated from {@linkcode BOUNDARY_LIMITS}). Every size is below the NATS
 * server's default `max_payload` (1 MiB), so nothing an agent can send stalls replication.
 *
 * @module
 */

const KiB = 1024;
const MiB = 1024 * KiB;

/** Largest JSON input of any host call (before it is parsed). */
export const MAX_HOST_INPUT_BYTES = 2 * MiB;
/** `mr_event`: largest `data` (as JSON). */
export const MAX_EVENT_DATA_BYTES = 64 * KiB;
/** `mr_submit`: largest `payload` (as JSON). */
export const MAX_SUBMIT_PAYLOAD_BYTES = 64 * KiB;
/** `mr_metric`: largest sample (name + labels as JSON). */
export const MAX_METRIC_BYTES = 4 * KiB;
/** `mr_metric`: most labels per sample. */
export const MAX_METRIC_LABELS = 16;
/** `mr_transition`: largest `from` + `to` + `reason`. */
export const MAX_TRANSITION_BYTES = 4 * KiB;
/** `mr_state_put`: longest key (UTF-8 bytes). */
export const MAX_STATE_KEY_BYTES = 256;
/** `mr_state_put`: largest value (as JSON). */
export const MAX_STATE_VALUE_BYTES = 64 * KiB;
/** `mr_state_put`: most keys per agent. */
export const STATE_QUOTA_KEYS = 1000;
/** `mr_state_put`: most bytes (keys + values) per agent. */
export const STATE_QUOTA_BYTES = 4 * MiB;
/** `mr_log`: longest `msg` (UTF-8 bytes; longer is truncated). */
export const MAX_LOG_MSG_BYTES = 4 * KiB;
/** `mr_log`: largest `fields` (as JSON). */
export const MAX_LOG_FIELDS_BYTES = 8 * KiB;
/** Log lines per agent per second (token bucket rate; Extism `log_*` included). */
export const LOG_LINES_PER_SEC = 50;
/** Log lines an agent may write in a burst. */
export const LOG_BURST_LINES = 200;
/** Log bytes per agent per second. */
export const LOG_BYTES_PER_SEC = 64 * KiB;
/** Log bytes an agent may write in a burst. */
export const LOG_BURST_BYTES = 256 * KiB;
/** `mr_file_read` / `mr_exec` / `mr_http`: largest content or output handed to the plugin. */
export const HOST_OUTPUT_CAP = 1 * MiB;
/** `mr_file_write` content, `mr_exec` stdin, `mr_http` body: largest accepted. */
export const MAX_HOST_WRITE_BYTES = 1 * MiB;
/**
 * Priority of agent events and submissions: at most this high (lower number = higher
 * priority). Lifecycle events use 1, so an agent never outranks them.
 */
export const AGENT_MIN_PRIORITY = 2;
/** Environment of every `mr_exec` child (nothing of the daemon's environment is passed). */
export const EXEC_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C",
};
/** Working directory of every `mr_exec` child. */
export const EXEC_CWD = "/";
/** Directories searched, when the spec is applied, for a granted `argv[0]` without a `/`. */
export const EXEC_SEARCH_PATH = [
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
];

/** One row of ABI.md's limits table. */
export interface LimitDoc {
  what: string;
  limit: string;
  error: string;
}

const size = (n: number) => n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`;

/** The limits as documented in ABI.md (generated; see scripts/abi_table.ts). */
export const BOUNDARY_LIMITS: readonly LimitDoc[] = [
  {
    what: "any host call's JSON input",
    limit: size(MAX_HOST_INPUT_BYTES),
    error: "`payload_too_large`",
  },
  {
    what: "`mr_event` `data` (JSON)",
    limit: size(MAX_EVENT_DATA_BYTES),
    error: "`payload_too_large`",
  },
  {
    what: "`mr_submit` `payload` (JSON)",
    limit: size(MAX_SUBMIT_PAYLOAD_BYTES),
    error: "`payload_too_large`",
  },
  {
    what: "`mr_metric` sample (name + labels)",
    limit: `${size(MAX_METRIC_BYTES)}, ${MAX_METRIC_LABELS} labels`,
    error: "`payload_too_large`",
  },
  {
    what: "`mr_transition` `from` + `to` + `reason`",
    limit: size(MAX_TRANSITION_BYTES),
    error: "`payload_too_large`",
  },
  {
    what: "`mr_state_put` key / value (JSON)",
    limit: `${MAX_STATE_KEY_BYTES} B / ${size(MAX_STATE_VALUE_BYTES)}`,
    error: "`payload_too_large`",
  },
  {
    what: "`mr_state_put` per agent",
    limit: `${STATE_QUOTA_KEYS} keys, ${size(STATE_QUOTA_BYTES)}`,
    error: "`quota_exceeded`",
  },
  {
    what: "`mr_submit` / `mr_event` priority",
    limit: `clamped to ${AGENT_MIN_PRIORITY}..4 (lifecycle events use 1)`,
    error: "— (the reply's `priority` says what was used)",
  },
  {
    what: "`mr_log` `msg` / `fields` (JSON)",
    limit: `${size(MAX_LOG_MSG_BYTES)} (truncated) / ${size(MAX_LOG_FIELDS_BYTES)}`,
    error: "`payload_too_large` for fields",
  },
  {
    what: "log lines per agent (`mr_log` and Extism `log_*`)",
    limit: `${LOG_LINES_PER_SEC}/s, burst ${LOG_BURST_LINES}; ${size(LOG_BYTES_PER_SEC)}/s, burst ${
      size(LOG_BURST_BYTES)
    }`,
    error: "`rate_limited`; dropped lines counted in health (`log_dropped`)",
  },
  {
    what: "`mr_file_read` / `mr_exec` output / `mr_http` body returned",
    limit: size(HOST_OUTPUT_CAP),
    error: "`payload_too_large` (file read); output truncated (exec, http)",
  },
  {
    what: "`mr_file_write` content, `mr_exec` stdin, `mr_http` body sent",
    limit: size(MAX_HOST_WRITE_BYTES),
    error: "`payload_too_large`",
  },
];
