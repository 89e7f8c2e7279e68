/**
 * Commands: run, status, facts, submit (issue 3).
 *
 * @module
 */
import type { Command } from "commander";
import type { CliContext } from "./context.ts";

/** Registers this concern's commands on `program`. */
export function registerDaemonCommands(_program: Command, _ctx: CliContext): void {
  // Commands of run, status, facts, submit (issue 3) are registered here by the work on that issue.
}
