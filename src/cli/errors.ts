/**
 * Exit-code mapping of the command-line contract (DESIGN §6):
 * 0 ok, 1 runtime failure, 2 usage or invalid input, 3 sandbox stop.
 *
 * @module
 */
import { ConfigError } from "../config/schema.ts";
import { SandboxError } from "../plugins/types.ts";

/** Exit codes. */
export const ExitCode = { Ok: 0, Runtime: 1, Usage: 2, Sandbox: 3 } as const;
/** One of {@linkcode ExitCode}. */
export type ExitCode = typeof ExitCode[keyof typeof ExitCode];

/** A CLI failure with an explicit exit code. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.Runtime,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Usage or invalid input (exit 2). */
export class UsageError extends CliError {
  override name = "UsageError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.Usage, options);
  }
}

/** The exit code an error maps to. */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof SandboxError) return ExitCode.Sandbox;
  if (err instanceof ConfigError || err instanceof TypeError || err instanceof SyntaxError) {
    return ExitCode.Usage;
  }
  return ExitCode.Runtime;
}
