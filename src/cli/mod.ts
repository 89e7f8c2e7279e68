/**
 * Builds the `machine-room` command tree. SaaS builders call {@linkcode buildCli} from
 * their own `main.ts`, add commands and compiled-in agents, and `deno compile` it.
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { createLogger, type Logger } from "../log/logger.ts";
import type { AgentSource, CliContext } from "./context.ts";
import { ExitCode, exitCodeFor } from "./errors.ts";
import { SandboxError } from "../plugins/types.ts";
import { registerPluginCommands } from "./plugin_cmd.ts";
import { registerDaemonCommands } from "./daemon_cmd.ts";
import { registerProvisionCommands } from "./provision_cmd.ts";
import { registerFleetCommands } from "./fleet_cmd.ts";
import { registerSpoolCommands } from "./spool_cmd.ts";
import { registerAgentsCommands } from "./agents_cmd.ts";

/** Product version reported by `--version`, facts and events. */
export const VERSION = "0.1.0";

/** Options for {@linkcode buildCli}. */
export interface BuildCliOptions {
  /** Program name in help. @default {"machine-room"} */
  name?: string;
  /** @default {VERSION} */
  version?: string;
  /** Compiled-in agents, usable as `builtin:<name>`. */
  agents?: Record<string, AgentSource>;
  /** @default {a JSON-lines stderr logger} */
  logger?: Logger;
}

/** The command tree plus the context its actions share. */
export interface Cli {
  program: Command;
  context: CliContext;
}

/**
 * Builds the command tree.
 *
 * @example Add a command and a compiled-in agent, then run
 * ```ts
 * import { buildCli, runCli } from "@machine-room/edge";
 * const cli = buildCli({ agents: { "acme-keeper": new URL("./acme.wasm", import.meta.url) } });
 * cli.program.command("acme-hello").action(() => console.log("hello from Acme"));
 * Deno.exit(await runCli(cli));
 * ```
 */
export function buildCli(options: BuildCliOptions = {}): Cli {
  const context: CliContext = {
    name: options.name ?? "machine-room",
    version: options.version ?? VERSION,
    logger: options.logger ?? createLogger(),
    agents: new Map(Object.entries(options.agents ?? {})),
  };
  const program = new Command(context.name)
    .description("Machine Room edge agent: runs a SaaS vendor's signed WASM agents on this host")
    .version(context.version)
    .showHelpAfterError()
    .exitOverride();
  registerPluginCommands(program, context);
  registerDaemonCommands(program, context);
  registerProvisionCommands(program, context);
  registerFleetCommands(program, context);
  registerSpoolCommands(program, context);
  registerAgentsCommands(program);
  return { program, context };
}

/**
 * Parses `argv`, runs the command and returns the exit code (never throws).
 * Sandbox stops print `{"error":{"code","message"}}` as stderr's last line.
 */
export async function runCli(cli: Cli, argv: string[] = Deno.args): Promise<number> {
  applyExitOverride(cli.program);
  try {
    await cli.program.parseAsync(argv, { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : ExitCode.Ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === "commander.helpDisplayed" || err.code === "commander.version" ||
        err.code === "commander.help"
      ) {
        return ExitCode.Ok;
      }
      return ExitCode.Usage;
    }
    const code = exitCodeFor(err);
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof SandboxError) {
      console.error(JSON.stringify(err.toJSON()));
    } else {
      console.error(`${cli.context.name}: ${message}`);
    }
    return code;
  }
}

function applyExitOverride(cmd: Command): void {
  cmd.exitOverride();
  for (const c of cmd.commands) applyExitOverride(c);
}
