/**
 * The `mr-saas` command tree. Global options: `--server URL`, `--creds F`, `--home D`.
 * S3 credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
 * `AWS_ENDPOINT_URL_S3`.
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { ExitCode, exitCodeFor } from "../src/cli/errors.ts";
import { registerOperatorCommands } from "./commands/operator.ts";
import { registerStreamCommands } from "./commands/streams.ts";
import { registerPublishCommands } from "./commands/publish.ts";
import { registerFleetCommands } from "./commands/fleet.ts";
import { registerConsoleCommand } from "./commands/console.ts";

export type { SaasGlobalOptions } from "./options.ts";

/** Builds the `mr-saas` program. */
export function buildSaasCli(): Command {
  const program = new Command("mr-saas")
    .description(
      "Machine Room SaaS-side tooling: operator, accounts, tokens, provisioner, publishing",
    )
    .option(
      "--server <url>",
      "NATS server URL of the customer account",
      Deno.env.get("MR_SAAS_SERVER"),
    )
    .option(
      "--creds <file>",
      "NATS creds file for the customer account",
      Deno.env.get("MR_SAAS_CREDS"),
    )
    .option(
      "--home <dir>",
      "vendor home dir written by `operator init`",
      Deno.env.get("MR_SAAS_HOME"),
    )
    .showHelpAfterError()
    .exitOverride();
  registerOperatorCommands(program);
  registerStreamCommands(program);
  registerPublishCommands(program);
  registerFleetCommands(program);
  registerConsoleCommand(program);
  return program;
}

/** Runs `mr-saas` and returns the exit code. */
export async function runSaasCli(program: Command, argv: string[] = Deno.args): Promise<number> {
  const override = (c: Command) => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : ExitCode.Ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      return ["commander.helpDisplayed", "commander.version", "commander.help"].includes(err.code)
        ? ExitCode.Ok
        : ExitCode.Usage;
    }
    console.error(`mr-saas: ${err instanceof Error ? err.message : String(err)}`);
    return exitCodeFor(err);
  }
}
