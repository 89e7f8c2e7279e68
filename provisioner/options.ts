/**
 * The `mr-saas` global options (`--server`, `--creds`, `--home`) as every command reads
 * them from the root program.
 *
 * @module
 */
import type { Command } from "commander";
import { UsageError } from "../src/cli/errors.ts";

/** Global options every command can read with `program.opts()`. */
export interface SaasGlobalOptions {
  server?: string;
  creds?: string;
  home?: string;
  json?: boolean;
}

/** The root program's global options. */
export function globalOptions(cmd: Command): SaasGlobalOptions {
  let root = cmd;
  while (root.parent) root = root.parent;
  return root.opts<SaasGlobalOptions>();
}

/** `--home` (or `MR_SAAS_HOME`), required. */
export function homeOption(cmd: Command): string {
  const h = globalOptions(cmd).home;
  if (!h) throw new UsageError("missing --home (or MR_SAAS_HOME): the vendor home dir");
  return h;
}

/** `--server` (or `MR_SAAS_SERVER`), optional. */
export function serverOption(cmd: Command): string | undefined {
  return globalOptions(cmd).server;
}
