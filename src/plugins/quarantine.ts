/**
 * Quarantine of agents whose sandbox process had to be killed: kills are counted per agent
 * name and module sha256; {@linkcode QUARANTINE_KILLS} within {@linkcode QUARANTINE_WINDOW_MS}
 * keep the agent refused (a `SandboxError` with `quarantined`) until its module changes.
 *
 * @module
 */
import { SandboxError } from "./types.ts";

/** Kills of one agent (same module) within {@linkcode QUARANTINE_WINDOW_MS} that quarantine it. */
export const QUARANTINE_KILLS = 3;
/** Window over which kills are counted. */
export const QUARANTINE_WINDOW_MS = 10 * 60_000;

/** An agent's identity for quarantine: its name and module. */
export interface AgentId {
  name: string;
  sha256: string;
}

/** Kill records of the agents of one sandbox. */
export class Quarantine {
  readonly #kills = new Map<string, { at: number[]; reason: SandboxError }>();

  constructor(private readonly now: () => number = Date.now) {}

  #key(a: AgentId): string {
    return `${a.name}\u0000${a.sha256}`;
  }

  /** Records a kill of `agent`; returns the kills within the window (this one included). */
  strike(agent: AgentId, reason: SandboxError): number {
    const k = this.#key(agent);
    const rec = this.#kills.get(k) ?? { at: [], reason };
    const now = this.now();
    rec.at = rec.at.filter((t) => now - t < QUARANTINE_WINDOW_MS);
    rec.at.push(now);
    rec.reason = reason;
    this.#kills.set(k, rec);
    return rec.at.length;
  }

  /** The refusal for a quarantined `agent`, or null. */
  check(agent: AgentId): SandboxError | null {
    const rec = this.#kills.get(this.#key(agent));
    if (!rec) return null;
    const now = this.now();
    const recent = rec.at.filter((t) => now - t < QUARANTINE_WINDOW_MS);
    if (recent.length < QUARANTINE_KILLS) return null;
    return new SandboxError(
      rec.reason.code,
      `Agent "${agent.name}" is quarantined: its sandbox process was killed ${recent.length} ` +
        `times in ${QUARANTINE_WINDOW_MS / 60_000} min (last: ${rec.reason.message})`,
      { quarantined: true },
    );
  }
}
