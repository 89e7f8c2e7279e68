/**
 * The governor wire contract (docs/fleet.md "Governors"): names, subjects, the stream's
 * shape and the mediator's request subjects. Shared by the client, the mediator and the
 * vendor tooling.
 *
 * @module
 */
import { DiscardPolicy, RetentionPolicy, StorageType, type StreamConfig } from "@nats-io/jetstream";
import { isId } from "../util/ids.ts";

/** Nanoseconds per millisecond (JetStream durations). */
export const NS_PER_MS = 1_000_000;

/** Default lease: how long a slot is held before it expires if never released or renewed. */
export const DEFAULT_LEASE_MS = 10 * 60_000;

/** Largest slot message: `{"owner","at"}` is far below; bounds what a node can store. */
export const SLOT_MAX_BYTES = 1024;

/** Who holds a slot: a node (`<site>.<node>`), from its credentials or config. */
export interface GovernorHolderId {
  site: string;
  node: string;
}

/** The stream name of governor `name`. */
export function governorStream(name: string): string {
  return `MR_GOV_${name}`;
}

/** The subjects of governor `name`'s stream: one per holder, `mrgov.<name>.<site>.<node>`. */
export function governorSubject(name: string): string {
  return `mrgov.${name}.*.*`;
}

/** The slot subject of one holder. */
export function slotSubject(name: string, h: GovernorHolderId): string {
  return `mrgov.${name}.${h.site}.${h.node}`;
}

/** Mediator operations. */
export type MediatorOp = "ensure" | "release" | "info" | "holders";

/** The subject a holder sends a mediator request on (its own subject space). */
export function mediatorSubject(h: GovernorHolderId, op: MediatorOp): string {
  return `mr.${h.site}.${h.node}.gov.${op}`;
}

/** What the mediator listens on (every holder of the account). */
export const MEDIATOR_SUBJECTS = "mr.*.*.gov.*";

/** Checks a governor name (same rule as site/node/agent identifiers). */
export function validateGovernorName(name: string): void {
  if (!isId(name)) {
    throw new TypeError(
      `Invalid governor name: "${name}" (expected ^[a-z0-9][a-z0-9_-]{0,62}$)`,
    );
  }
}

/** Raised for an unusable governor name, capacity or lease, or a missing governor. */
export class GovernorError extends Error {
  override name = "GovernorError";
  constructor(message: string, readonly governor: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Checks capacity and lease; throws {@linkcode GovernorError}. */
export function validateLimits(name: string, capacity: number, leaseMs: number): void {
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new GovernorError(
      `Invalid capacity for governor "${name}": ${capacity} (expected an integer ≥ 1)`,
      name,
    );
  }
  if (!Number.isFinite(leaseMs) || leaseMs < 1000) {
    throw new GovernorError(
      `Invalid lease for governor "${name}": ${leaseMs} ms (expected ≥ 1000)`,
      name,
    );
  }
}

/**
 * The stream of a governor: one message per holder subject (`max_msgs_per_subject: 1`),
 * `max_msgs = capacity` with `discard: new` (the capacity+1-th holder is refused by the
 * server), `max_age = lease` (a crashed holder's slot ages out). A holder renews by
 * publishing on its own subject again (it replaces its message; nats-server lets a
 * publish that replaces a subject's message through a full `discard: new` stream).
 */
export function governorStreamConfig(
  name: string,
  capacity: number,
  leaseMs: number,
  replicas = 1,
): Partial<StreamConfig> & { name: string } {
  return {
    name: governorStream(name),
    subjects: [governorSubject(name)],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.New,
    max_msgs: capacity,
    max_msgs_per_subject: 1,
    max_msg_size: SLOT_MAX_BYTES,
    max_age: leaseMs * NS_PER_MS,
    num_replicas: replicas,
    allow_direct: true,
    // slots carry no msg id; a short window keeps the server light
    duplicate_window: Math.min(leaseMs, 60_000) * NS_PER_MS,
  };
}
