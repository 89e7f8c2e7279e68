/**
 * `machine-room spool dead-letters [--state-dir D | --config F] [--json] [--retry | --purge]
 * [--id ID…]`: lists the messages the server refused for good (parked by the replicator
 * with reason, failure count and first/last failure), or moves them back to the send queue
 * (`--retry`) or deletes them (`--purge`): the given `--id`s, else all. Works with the
 * daemon running (through request files it answers) or stopped (opens the spool).
 *
 * @module
 */
import type { Command } from "commander";
import { join } from "node:path";
import { ConfigError } from "../config/schema.ts";
import { openSpool } from "../spool/mod.ts";
import {
  requestFromDaemon,
  runSpoolRequest,
  type SpoolRequest,
  type SpoolRequestResult,
} from "../spool/requests.ts";
import { ulid } from "../util/ulid.ts";
import type { CliContext } from "./context.ts";
import { defaultStateDir, resolveConfig } from "./daemon_cmd.ts";
import { CliError, UsageError } from "./errors.ts";
import { out } from "./output.ts";

function daemonRunning(stateDir: string): boolean {
  try {
    const pid = Number(Deno.readTextFileSync(join(stateDir, "daemon.pid")).trim());
    return pid > 0 && Deno.statSync(`/proc/${pid}`).isDirectory;
  } catch {
    return false;
  }
}

/** Registers `spool dead-letters`. */
export function registerSpoolCommands(program: Command, _ctx: CliContext): void {
  const spool = program.command("spool").description("inspect the local durable spool");
  spool.command("dead-letters")
    .description(
      "list messages the server refused for good (too large, invalid subject, no stream), " +
        "or retry or purge them",
    )
    .option("--config <file>", "node config JSON (to find the state dir)")
    .option("--state-dir <dir>", "state directory")
    .option("--retry", "move the dead letters (--id, else all) back to the send queue")
    .option("--purge", "delete the dead letters (--id, else all)")
    .option("--id <ids...>", "only these message ids")
    .option("--json", "print JSON")
    .action(async (o: {
      config?: string;
      stateDir?: string;
      retry?: boolean;
      purge?: boolean;
      id?: string[];
      json?: boolean;
    }) => {
      if (o.retry && o.purge) throw new UsageError("--retry and --purge exclude each other");
      let stateDir = o.stateDir;
      if (!stateDir) {
        try {
          stateDir = (await resolveConfig(o)).state_dir;
        } catch (err) {
          if (err instanceof ConfigError && !o.config) stateDir = defaultStateDir();
          else throw err;
        }
      }
      const req: SpoolRequest = {
        action: o.retry ? "retry" : o.purge ? "purge" : "list",
        ...(o.id ? { ids: o.id } : {}),
      };
      let result: SpoolRequestResult | null;
      if (daemonRunning(stateDir)) {
        result = await requestFromDaemon(stateDir, ulid(), req);
        if (!result) throw new CliError(`the daemon on "${stateDir}" did not answer within 10 s`);
        if (result.error) throw new CliError(`the daemon refused the request: ${result.error}`);
      } else {
        const path = join(stateDir, "spool.db");
        try {
          Deno.statSync(path);
        } catch {
          throw new CliError(`no spool on state dir "${stateDir}" (no spool.db)`);
        }
        const sp = openSpool(path);
        try {
          result = runSpoolRequest(sp, req);
        } finally {
          sp.close();
        }
      }
      if (o.json) {
        out(JSON.stringify(result, null, 2));
        return;
      }
      const lines: string[] = [];
      if (result.retried !== undefined) lines.push(`retried: ${result.retried}`);
      if (result.purged !== undefined) lines.push(`purged: ${result.purged}`);
      lines.push(`dead letters: ${result.dead_letters.length}`);
      for (const d of result.dead_letters) {
        lines.push(
          `${d.id}  ${d.reason}  ×${d.count}  ${d.subject}  ${d.size} B  ` +
            `first ${d.first_seen}  last ${d.last_seen}  ${d.detail}`,
        );
      }
      out(lines.join("\n"));
    });
}
