/**
 * What a failed publish means for the message (built on src/nats/errors.ts):
 *
 * - `park`: the server can never take it as it is — larger than `max_payload` or the
 *   stream's `max_msg_size`, or an invalid subject. Parked at once.
 * - `count`: refused for this message (publish permission, a JetStream API rejection):
 *   counted; parked after `maxAttempts`, retried with its own backoff meanwhile.
 * - `ambiguous`: "no responders" / "JetStream not enabled". Either no stream listens on
 *   the subject, or JetStream is restarting. The replicator asks JetStream (`$JS.API.INFO`):
 *   when it answers, the message has no stream (`count`, reason `no_stream`); when it
 *   does not, the failure is transient.
 * - `transient`: timeouts, disconnects, a full stream or account: the whole round backs
 *   off; never counted.
 *
 * @module
 */
import type { DeadLetterReason } from "../spool/mod.ts";
import {
  isInvalidSubject,
  isJetStreamNotEnabled,
  isNoResponders,
  isPayloadTooLarge,
  isPermissionViolation,
  isStreamFull,
  isTransient,
  jsApiCode,
} from "../nats/errors.ts";

/** The verdict on one failed publish. */
export type Verdict =
  | { kind: "park"; reason: DeadLetterReason }
  | { kind: "count"; reason: DeadLetterReason }
  | { kind: "ambiguous" }
  | { kind: "transient" };

/** Classifies a publish error. */
export function classifyPublishError(err: unknown): Verdict {
  if (isPayloadTooLarge(err)) return { kind: "park", reason: "too_large" };
  if (isInvalidSubject(err)) return { kind: "park", reason: "invalid_subject" };
  if (isNoResponders(err) || isJetStreamNotEnabled(err)) return { kind: "ambiguous" };
  if (isTransient(err)) return { kind: "transient" };
  if (isPermissionViolation(err)) return { kind: "count", reason: "permission" };
  if (isStreamFull(err)) return { kind: "transient" };
  if (jsApiCode(err) !== null) return { kind: "count", reason: "rejected" };
  return { kind: "transient" };
}

/** Error text for logs and the dead-letter table. */
export function errorText(err: unknown): string {
  const e = err as { name?: string; message?: string } | null;
  const code = jsApiCode(err);
  return `${e?.name ?? "Error"}: ${e?.message ?? String(err)}${code !== null ? ` (${code})` : ""}`;
}
