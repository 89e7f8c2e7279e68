/**
 * The contract of an agent supervisor (`supervisor.ts`): its states, what it is given and
 * what it shows.
 *
 * @module
 */
import type { AgentSpec } from "../desired/spec.ts";
import type { AgentPlugin } from "../plugins/types.ts";
import type { Logger } from "../log/logger.ts";
import type { Clock } from "../util/clock.ts";
import type { RolloutGate } from "./rollout.ts";

/** The named states of a supervised agent. */
export type SupervisorState =
  | "idle"
  | "downloading"
  | "loading"
  | "running"
  | "waiting_governor"
  | "swapping"
  | "backoff"
  | "rejected"
  | "removing"
  | "stopped";

/** The timers a supervisor needs: the daemon's injected {@linkcode Clock}. */
export type SupervisorClock = Pick<Clock, "now" | "setTimeout" | "clearTimeout">;

/** A governor as the supervisor uses it (the daemon's `GovernorModule`). */
export interface SupervisorGovernor {
  acquire(
    name: string,
    options: { owner: string; capacity?: number; timeoutMs?: number },
  ): Promise<{ held: boolean }>;
  release(name: string, owner: string): Promise<void>;
}

/** What a supervisor is given. */
export interface SupervisorDeps {
  name: string;
  clock: SupervisorClock;
  logger: Logger;
  /** The module's verified bytes (cache or download). */
  fetch(spec: AgentSpec): Promise<Uint8Array>;
  /** Loads the bytes into the sandbox with the spec's grants and limits (no `mr_init`). */
  load(spec: AgentSpec, bytes: Uint8Array): Promise<AgentPlugin>;
  /** This node's facts. */
  facts(): Record<string, unknown>;
  /** Emits `io.machineroom.agent.v1.<event>` for this agent. */
  emit(event: string, data: Record<string, unknown>): void;
  /** The running spec changed (the manager persists `running.json`). */
  changed(): void;
  /** Throws a `PolicyError` when local policy forbids `spec`. */
  admit?(spec: AgentSpec): void;
  /** The governor module, when the daemon has one. */
  governor?(): SupervisorGovernor | undefined;
  /** Records and gates rollouts (`rollout` specs). */
  rollout?: RolloutGate;
  /** Governor owner id. @default {name} */
  owner?: string;
  /** The desired-state version to report. */
  version?(): number | null;
  /** Random source for jitter. @default {Math.random} */
  random?: () => number;
}

/** A read-only view of a supervisor (health, `agents` command). */
export interface SupervisorSnapshot {
  name: string;
  state: SupervisorState;
  /** The spec running now (or being started). */
  spec: AgentSpec | null;
  /** The spec wanted. */
  desired: AgentSpec | null;
  version: number | null;
  restarts: number;
  runs: number;
  last_result: unknown;
  last_run: string | null;
  last_error: string | null;
  /** Why the desired spec is held back (refused, rollout halted), if it is. */
  held: string | null;
}
