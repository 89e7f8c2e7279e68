/**
 * The network-plane services that agent host functions reach through the daemon
 * (DESIGN §5). The sandbox checks grants first, then calls these. `plugin run`
 * implements them by printing JSON lines; the daemon implements them with the spool,
 * KV, election and governors.
 *
 * @module
 */

/** An event an agent emits (`mr_event`). */
export interface AgentEventInput {
  /** Event name; becomes type `io.machineroom.agent.<agent>.<type>`. */
  type: string;
  data?: unknown;
  /** CloudEvents `subject`, optional. */
  subject?: string;
}

/** A submission (`mr_submit`). */
export interface SubmitInput {
  /** Submission name (must be in `grants.submit`); subject `mr.<site>.<node>.submit.<subject>`. */
  subject: string;
  payload: unknown;
  /** 0 (highest) … 4 (lowest). @default {2} */
  priority?: number;
  /** Duration string, e.g. "7d". */
  ttl?: string;
}

/** A metric sample (`mr_metric`). */
export interface MetricInput {
  name: string;
  value: number;
  labels?: Record<string, string>;
  kind?: "gauge" | "counter";
}

/** A state-machine transition report (`mr_transition`). */
export interface TransitionInput {
  from: string;
  to: string;
  reason?: string;
}

/** A governor request (`mr_governor`). */
export interface GovernorInput {
  name: string;
  action: "acquire" | "release";
  /** How long acquire may wait. @default {0 = try once} */
  timeout_ms?: number;
}

/** Governor result. */
export interface GovernorResult {
  held: boolean;
  /** Slot sequence when held. */
  seq?: number;
}

/**
 * What host functions need from the daemon. Every method receives the calling agent's
 * name. Implementations must be safe to call concurrently and must never throw for
 * ordinary refusals: they throw `HostCallError` (see `src/plugins`) or plain `Error`.
 */
export interface HostServices {
  event(agent: string, input: AgentEventInput): Promise<{ id: string }>;
  submit(agent: string, input: SubmitInput): Promise<{ id: string }>;
  metric(agent: string, input: MetricInput): Promise<void>;
  transition(agent: string, input: TransitionInput): Promise<{ id: string }>;
  kvGet(agent: string, key: string): Promise<{ value: unknown; revision: number } | null>;
  governor(agent: string, input: GovernorInput): Promise<GovernorResult>;
  isLeader(agent: string): Promise<boolean>;
  /** The node's current facts document. */
  facts(agent: string): Promise<Record<string, unknown>>;
}
