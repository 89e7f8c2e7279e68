/**
 * The contract between the daemon (`machine-room run`, issue [2/6]) and the concerns that
 * plug into it: the agent manager ([3/6]), election and governors ([6/6]), provisioning
 * renewal ([4/6]). Each is a {@linkcode DaemonModule}; the daemon starts them in order,
 * routes `cmd.<name>` requests to their handlers and merges their health sections.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { NodeConfig } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";

/** Options for a spooled CloudEvent. */
export interface OutboxEventOptions {
  /** Agent name: sets `source` `…/agents/<name>` and extension `mragent`. */
  agent?: string;
  /** CloudEvents `subject`. */
  subject?: string;
  /** 0 (highest) … 4 (lowest). @default {2} */
  priority?: number;
  /** Overrides the full CloudEvents `type` (agent-emitted events use `io.machineroom.agent.<name>.<event>`). */
  type?: string;
}

/**
 * Everything leaving the node goes through the outbox: written to the durable spool
 * first, then replicated to JetStream with `Nats-Msg-Id` = id.
 */
export interface Outbox {
  /**
   * Spools a CloudEvent of type `io.machineroom.<category>.v1.<event>` on
   * `mr.<site>.<node>.ev.<category>`. Resolves with the event id (ULID) once durable.
   */
  event(
    category: string,
    event: string,
    data: unknown,
    options?: OutboxEventOptions,
  ): Promise<string>;
  /** Spools a submission on `mr.<site>.<node>.submit.<subject>`. */
  submit(
    subject: string,
    payload: unknown,
    options?: {
      agent?: string;
      priority?: number;
      ttlMs?: number;
      /** Message id (idempotent re-submission); a fresh ULID by default. */
      id?: string;
    },
  ): Promise<string>;
  /** Spools a metric sample (batched onto `mr.<site>.<node>.metrics`). */
  metric(sample: {
    name: string;
    value: number;
    labels?: Record<string, string>;
    kind?: "gauge" | "counter";
    agent?: string;
  }): Promise<void>;
}

/** A command handler: the parsed JSON payload (or `null`) in, a JSON-serialisable reply out. Throw to reply with an error. */
export type CommandHandler = (payload: unknown) => Promise<unknown>;

/** What the daemon hands each module. */
export interface DaemonContext {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly outbox: Outbox;
  /** Resolves with the live connection once (re)connected; never rejects while the daemon runs. */
  nats(): Promise<NatsConnection>;
  /** The connection if currently connected, else `null`. */
  natsNow(): NatsConnection | null;
  /** The latest facts document (collected at start and every facts_interval). */
  facts(): Record<string, unknown>;
  /** Subscribe to facts refreshes; returns an unsubscribe function. */
  onFacts(listener: (facts: Record<string, unknown>) => void): () => void;
  /** Collects facts now (and notifies the listeners). */
  refreshFacts(): Promise<void>;
  /**
   * Applies the signed spec's `settings` live (heartbeat and facts intervals); absent fields
   * fall back to the node config's.
   */
  applySettings(
    settings: { facts_interval?: string | undefined; heartbeat_interval?: string | undefined },
  ): void;
  /** Aborted when the daemon stops. */
  readonly signal: AbortSignal;
  /** Another module by name (e.g. the agent manager asks `election` whether this node leads). */
  module<T extends DaemonModule>(name: string): T | undefined;
}

/** A concern that runs inside the daemon. */
export interface DaemonModule {
  readonly name: string;
  /** Starts background work; must return promptly (do not await the network here). */
  start(ctx: DaemonContext): Promise<void>;
  /** Stops within a few seconds. */
  stop(): Promise<void>;
  /** A section merged into the health document under `name`. */
  health?(): Record<string, unknown>;
  /** Fields merged into the facts document (e.g. `policy: {sha256}`). */
  facts?(): Record<string, unknown>;
  /** `cmd.<command>` handlers this module answers. */
  commands?(): Record<string, CommandHandler>;
}

/**
 * The `election` module (issue [6/6]): site leader election. The agent manager looks it up
 * with `ctx.module<ElectionModule>("election")`; when absent every node counts as leader.
 */
export interface ElectionModule extends DaemonModule {
  /** True while this node holds the site's leadership (or has the static role `leader`). */
  isLeader(): boolean;
  /** Called on every change of leadership; returns an unsubscribe function. */
  onLeadershipChange(listener: (leader: boolean) => void): () => void;
}

/**
 * The `governor` module (issue [6/6]): fleet-wide semaphores. Used by `mr_governor` and by
 * staged rollouts (`rollout: {governor, capacity}`).
 */
export interface GovernorModule extends DaemonModule {
  /**
   * Takes a slot of governor `name` (creating it with `capacity` when it does not exist).
   * Waits up to `timeoutMs` (0 = try once). `held: false` when no slot was free in time.
   */
  acquire(
    name: string,
    options: { owner: string; capacity?: number; timeoutMs?: number },
  ): Promise<{ held: boolean; seq?: number }>;
  /** Releases a slot taken by `owner` (no-op when not held). */
  release(name: string, owner: string): Promise<void>;
}
