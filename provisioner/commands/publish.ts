/**
 * mr-saas commands: key create, publish, agents (issue 4).
 *
 * @module
 */
import type { Command } from "commander";

/** Registers this concern's commands on `program`. */
export function registerPublishCommands(_program: Command): void {
  // Commands of key create, publish, agents (issue 4) are registered here by the work on that issue.
}
