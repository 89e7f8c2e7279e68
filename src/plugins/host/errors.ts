/**
 * Errors a host function returns to the plugin as `{"error":{"code","message"}}`.
 *
 * @module
 */

/** Codes a host function returns to the plugin (ABI.md "Error codes"). */
export const HostErrorCode = {
  CapabilityDenied: "capability_denied",
  InvalidInput: "invalid_input",
  NotFound: "not_found",
  IoError: "io_error",
  Timeout: "timeout",
  Unavailable: "unavailable",
  PayloadTooLarge: "payload_too_large",
  QuotaExceeded: "quota_exceeded",
  RateLimited: "rate_limited",
} as const;
/** One of {@linkcode HostErrorCode}. */
export type HostErrorCode = typeof HostErrorCode[keyof typeof HostErrorCode];

/** What each code means (ABI.md's error table is generated from this). */
export const HOST_ERROR_DOCS: Record<HostErrorCode, string> = {
  capability_denied:
    "the grant does not allow it (the same message whether or not the thing exists); an audit line is written",
  invalid_input: "the input is not JSON or not the documented shape (the message names the field)",
  not_found: "the granted thing does not exist",
  io_error: "the host could not do it (I/O, network, a non-JSON reply)",
  timeout: "the call's deadline (or the given `timeout_ms`) passed",
  unavailable:
    "a service is down (e.g. NATS for `mr_kv_get`), or the spool is full of higher-priority data",
  payload_too_large: "the input is over a documented size limit",
  quota_exceeded: "the agent's `mr_state_put` quota (keys or bytes) is used up",
  rate_limited: "the agent logs faster than its rate; the line is dropped and counted",
};

/** A refusal or failure a host function reports to the plugin as an error object. */
export class HostCallError extends Error {
  override name = "HostCallError";
  constructor(readonly code: HostErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
