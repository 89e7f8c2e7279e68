/**
 * Commands: plugin run|inspect (issue 2).
 *
 * @module
 */
import type { Command } from "commander";
import type { CliContext } from "./context.ts";

/** Registers this concern's commands on `program`. */
export function registerPluginCommands(_program: Command, _ctx: CliContext): void {
  // Commands of plugin run|inspect (issue 2) are registered here by the work on that issue.
}
