/**
 * Pure decisions of the agent manager: which agents this node runs, and which cached
 * modules the garbage collector keeps.
 *
 * @module
 */
import { matches } from "../desired/match.ts";
import type { AgentSpec } from "../desired/spec.ts";

/**
 * The agents this node runs: those whose `match` holds against `facts`, and `leader_only`
 * ones only while `leader`.
 *
 * @example
 * ```ts
 * selectAgents(spec.agents, facts, false); // Map name → spec
 * ```
 */
export function selectAgents(
  agents: readonly AgentSpec[],
  facts: unknown,
  leader: boolean,
): Map<string, AgentSpec> {
  const out = new Map<string, AgentSpec>();
  for (const a of agents) {
    if (!matches(a.match, facts)) continue;
    if (a.leader_only && !leader) continue;
    out.set(a.name, a);
  }
  return out;
}

/**
 * The module hashes the cache keeps: every hash of the desired state, and the last
 * `depth` hashes each agent ran (including removed agents, so a rollback or a re-publish
 * needs no download).
 */
export function cacheKeepSet(
  desired: readonly AgentSpec[],
  history: Readonly<Record<string, readonly string[]>>,
  depth = 2,
): Set<string> {
  const keep = new Set<string>();
  for (const a of desired) keep.add(a.wasm.sha256);
  for (const hashes of Object.values(history)) {
    for (const h of hashes.slice(-depth)) keep.add(h);
  }
  return keep;
}

/** Appends `sha256` to an agent's history (no repeats at the end, at most `max` kept). */
export function pushHistory(history: readonly string[], sha256: string, max = 5): string[] {
  const out = history.filter((h) => h !== sha256);
  out.push(sha256);
  return out.slice(-max);
}
