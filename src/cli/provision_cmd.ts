/**
 * Command: `provision --token F [--state-dir D] [--node NAME]` — enrol this host with the
 * vendor's provisioner and write `D/config.json` and `D/identity/*` (0600).
 *
 * @module
 */
import type { Command } from "commander";
import type { CliContext } from "./context.ts";
import { CliError, UsageError } from "./errors.ts";
import { defaultStateDir } from "./daemon_cmd.ts";

/** Registers this concern's commands on `program`. */
export function registerProvisionCommands(program: Command, ctx: CliContext): void {
  program.command("provision")
    .description(
      "enrol this host with the vendor's provisioner (writes <state-dir>/config.json and identity/, 0600)",
    )
    .requiredOption("--token <file>", "provisioning JWT file")
    .option("--state-dir <dir>", "state directory")
    .option("--node <name>", "node name (default: from the hostname)")
    .action(async (o: { token: string; stateDir?: string; node?: string }) => {
      const { provision, ProvisionError } = await import("../provision/mod.ts");
      let token: string;
      try {
        token = await Deno.readTextFile(o.token);
      } catch (err) {
        throw new UsageError(`cannot read token file ${o.token}: ${(err as Error).message}`);
      }
      try {
        const path = await provision({
          token,
          stateDir: o.stateDir ?? defaultStateDir(),
          logger: ctx.logger,
          ...(o.node ? { node: o.node } : {}),
        });
        console.log(JSON.stringify({ config: path }));
      } catch (err) {
        if (err instanceof ProvisionError) {
          if (err.code === "malformed_token") throw new UsageError(err.message);
          throw new CliError(err.message);
        }
        throw err;
      }
    });
}
