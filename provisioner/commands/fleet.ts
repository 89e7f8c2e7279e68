/**
 * mr-saas commands: rollout status (issue 7).
 *
 * @module
 */
import type { Command } from "commander";

/** Registers this concern's commands on `program`. */
export function registerFleetCommands(_program: Command): void {
  // Commands of rollout status (issue 7) are registered here by the work on that issue.
}
