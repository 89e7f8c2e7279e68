/**
 * mr-saas commands: operator init, account add|list|revoke, token issue, serve, node revoke, audit verify (issue 5).
 *
 * @module
 */
import type { Command } from "commander";

/** Registers this concern's commands on `program`. */
export function registerOperatorCommands(_program: Command): void {
  // Commands of operator init, account add|list|revoke, token issue, serve, node revoke, audit verify (issue 5) are registered here by the work on that issue.
}
