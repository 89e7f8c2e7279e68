/**
 * Predicates over NATS errors, built on the nats.js error classes (`@nats-io/nats-core`
 * `errors.*`, `@nats-io/jetstream` `JetStreamApiError` / `jserrors`) and the server's
 * JetStream API error codes — never on message text. Each walks the `cause` chain, so a
 * wrapped error (e.g. `JetStreamNotEnabled` whose cause is a no-responders `RequestError`)
 * is recognised.
 *
 * Transient errors — timeouts, a closed, draining or broken connection, "no responders"
 * and "JetStream not enabled" (both seen while a server restarts) — are what
 * {@linkcode isTransient} answers; callers must never count them toward parking or
 * dropping data.
 *
 * @module
 */
import { JetStreamApiCodes, JetStreamApiError, jserrors } from "@nats-io/jetstream/internal";
import { errors } from "@nats-io/transport-node";

/** JetStream API error codes used here (nats-server `server/errors.json`). */
export const JsCode = {
  ...JetStreamApiCodes,
  /** resource limits exceeded for account */
  AccountResourcesExceeded: 10002,
  /** JetStream system temporarily unavailable (a cluster electing a meta or stream leader) */
  ClusterNotAvailable: 10008,
  /** insufficient resources */
  InsufficientResources: 10023,
  /** insufficient memory resources available */
  MemoryResourcesExceeded: 10028,
  /** insufficient storage resources available */
  StorageResourcesExceeded: 10047,
  /** message size exceeds maximum allowed (the stream's `max_msg_size`) */
  MessageExceedsMaximum: 10054,
  /** stream message delete failed */
  MessageDeleteFailed: 10057,
  /** stream name already in use (with a different configuration) */
  StreamNameInUse: 10058,
  /** stream store failed, e.g. "maximum messages exceeded" with discard new */
  StoreFailed: 10077,
} as const;

/** The errors of `err`'s cause chain (at most 8 deep), `err` first. */
export function causeChain(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && out.length < 8;) {
    out.push(e);
    e = e instanceof Error ? e.cause : undefined;
  }
  return out;
}

function some(err: unknown, p: (e: unknown) => boolean): boolean {
  return causeChain(err).some(p);
}

/** The JetStream API `err_code` of the first `JetStreamApiError` in the chain, else `null`. */
export function jsApiCode(err: unknown): number | null {
  for (const e of causeChain(err)) {
    if (e instanceof JetStreamApiError) return e.code ?? null;
  }
  return null;
}

/** True when the chain holds a `JetStreamApiError` with one of `codes`. */
export function hasJsCode(err: unknown, ...codes: number[]): boolean {
  const c = jsApiCode(err);
  return c !== null && codes.includes(c);
}

/** A request or PubAck that timed out (`TimeoutError`). */
export function isTimeout(err: unknown): boolean {
  return some(err, (e) => e instanceof errors.TimeoutError);
}

/** "No responders": nobody subscribes the subject (for JetStream: no stream, or JS down). */
export function isNoResponders(err: unknown): boolean {
  return some(
    err,
    (e) =>
      e instanceof errors.NoRespondersError ||
      (e instanceof errors.RequestError && e.isNoResponders()),
  );
}

/** JetStream is not enabled or not answering (nats.js maps a no-responders JS request to this). */
export function isJetStreamNotEnabled(err: unknown): boolean {
  return some(err, (e) => e instanceof jserrors.JetStreamNotEnabled) ||
    hasJsCode(err, JsCode.JetStreamNotEnabledForAccount);
}

/** The connection is closed, draining, or broke. */
export function isConnectionError(err: unknown): boolean {
  return some(
    err,
    (e) =>
      e instanceof errors.ClosedConnectionError || e instanceof errors.DrainingConnectionError ||
      e instanceof errors.ConnectionError,
  );
}

/** The server refused a publish or subscription by permissions. */
export function isPermissionViolation(err: unknown): boolean {
  return some(err, (e) => e instanceof errors.PermissionViolationError);
}

/** The client refused the payload before sending: larger than the server's `max_payload`. */
export function isPayloadTooLarge(err: unknown): boolean {
  return some(err, (e) => e instanceof errors.InvalidArgumentError) ||
    hasJsCode(err, JsCode.MessageExceedsMaximum);
}

/** The subject is not a valid NATS subject. */
export function isInvalidSubject(err: unknown): boolean {
  return some(err, (e) => e instanceof errors.InvalidSubjectError);
}

/** Stream not found (10059). */
export function isStreamNotFound(err: unknown): boolean {
  return hasJsCode(err, JsCode.StreamNotFound);
}

/** Consumer not found (10014). */
export function isConsumerNotFound(err: unknown): boolean {
  return hasJsCode(err, JsCode.ConsumerNotFound);
}

/** Stream name already in use (10058): another client created it first. */
export function isStreamNameInUse(err: unknown): boolean {
  return hasJsCode(err, JsCode.StreamNameInUse);
}

/** Wrong last sequence (10071/10164): a compare-and-set (e.g. `kv.create`) lost. */
export function isWrongLastSequence(err: unknown): boolean {
  return hasJsCode(err, JsCode.StreamWrongLastSequence, JsCode.StreamWrongLastSequenceUnknown);
}

/** No message found (10037). */
export function isNoMessageFound(err: unknown): boolean {
  return hasJsCode(err, JsCode.NoMessageFound);
}

/** The stream or account is full (store failed, storage/memory/account limits). */
export function isStreamFull(err: unknown): boolean {
  return hasJsCode(
    err,
    JsCode.StoreFailed,
    JsCode.StorageResourcesExceeded,
    JsCode.MemoryResourcesExceeded,
    JsCode.AccountResourcesExceeded,
    JsCode.InsufficientResources,
  );
}

/** A JetStream cluster electing a leader answers "temporarily unavailable" (10008). */
export function isClusterUnavailable(err: unknown): boolean {
  return hasJsCode(err, JsCode.ClusterNotAvailable);
}

/**
 * Transient: a timeout, a connection problem, "no responders", "JetStream not enabled" or
 * a cluster electing a leader. Retry later; never count toward parking or dropping.
 */
export function isTransient(err: unknown): boolean {
  return isTimeout(err) || isConnectionError(err) || isNoResponders(err) ||
    isJetStreamNotEnabled(err) || isClusterUnavailable(err);
}
