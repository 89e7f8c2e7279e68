/**
 * Commands: provision (issue 5).
 *
 * @module
 */
import type { Command } from "commander";
import type { CliContext } from "./context.ts";

/** Registers this concern's commands on `program`. */
export function registerProvisionCommands(_program: Command, _ctx: CliContext): void {
  // Commands of provision (issue 5) are registered here by the work on that issue.
}
