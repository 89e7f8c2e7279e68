/**
 * mr-saas commands: init, events, nodes, cmd (issue 3).
 *
 * @module
 */
import type { Command } from "commander";

/** Registers this concern's commands on `program`. */
export function registerStreamCommands(_program: Command): void {
  // Commands of init, events, nodes, cmd (issue 3) are registered here by the work on that issue.
}
