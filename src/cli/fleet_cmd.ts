/**
 * Commands: governor run, site broker-config (issue 7).
 *
 * @module
 */
import type { Command } from "commander";
import type { CliContext } from "./context.ts";

/** Registers this concern's commands on `program`. */
export function registerFleetCommands(_program: Command, _ctx: CliContext): void {
  // Commands of governor run, site broker-config (issue 7) are registered here by the work on that issue.
}
