/**
 * Spec `match`: which nodes run an agent, by facts. Each entry maps a dotted path into the
 * facts document (`os.platform`, `cpu.cores`, `identity.node`) to a value (equality) or an
 * operator object `{eq, ne, in, gte, lte, regex}`; all entries must hold.
 *
 * @module
 */
import { factAt } from "../facts/mod.ts";
import type { AgentSpec } from "./spec.ts";

type Condition = NonNullable<AgentSpec["match"]>[string];

function holds(actual: unknown, cond: Condition): boolean {
  if (cond === null || typeof cond !== "object") return actual === cond;
  if ("eq" in cond && actual !== cond.eq) return false;
  if ("ne" in cond && actual === cond.ne) return false;
  if (cond.in && !cond.in.includes(actual as string | number | boolean | null)) return false;
  if (cond.gte !== undefined && !(typeof actual === "number" && actual >= cond.gte)) return false;
  if (cond.lte !== undefined && !(typeof actual === "number" && actual <= cond.lte)) return false;
  if (cond.regex !== undefined) {
    let re: RegExp;
    try {
      re = new RegExp(cond.regex);
    } catch {
      return false;
    }
    if (typeof actual !== "string" || !re.test(actual)) return false;
  }
  return true;
}

/** True when every condition of `match` holds for `facts` (an absent match always holds). */
export function matches(match: AgentSpec["match"], facts: unknown): boolean {
  if (!match) return true;
  return Object.entries(match).every(([path, cond]) => holds(factAt(facts, path), cond));
}
