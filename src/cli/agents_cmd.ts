/**
 * `machine-room agents [--state-dir D | --config F] [--json]`: the host owner's view of
 * what the vendor runs here — every agent with its status, version, sha256, signer key,
 * grants and limits, and the local policy in force. Read from the running daemon's
 * `health.json` (rewritten every 2 s), so it works while the daemon runs and needs no
 * NATS.
 *
 * @module
 */
import type { Command } from "commander";
import { join } from "node:path";
import { CliError } from "./errors.ts";
import { out } from "./output.ts";
import { defaultStateDir, resolveConfig } from "./daemon_cmd.ts";

interface AgentRow {
  name: string;
  status: string;
  state?: string;
  version: number | null;
  sha256: string | null;
  signer: string | null;
  grants: Record<string, unknown> | null;
  limits: Record<string, unknown> | null;
  held: string | null;
  last_error: string | null;
}

function grantSummary(g: Record<string, unknown> | null): string {
  if (!g) return "-";
  const parts: string[] = [];
  for (const [k, v] of Object.entries(g)) {
    if (Array.isArray(v) && v.length) parts.push(`${k}:${v.length}`);
    else if (v === true) parts.push(k);
    else if (k === "files" && v && typeof v === "object") {
      const f = v as { read?: unknown[]; write?: unknown[] };
      if (f.read?.length) parts.push(`files.read:${f.read.length}`);
      if (f.write?.length) parts.push(`files.write:${f.write.length}`);
    }
  }
  return parts.join(",") || "none";
}

/** Registers `agents`. */
export function registerAgentsCommands(program: Command): void {
  program.command("agents")
    .description("list the agents the vendor runs on this host (status, hash, signer, grants)")
    .option("--config <file>", "node config JSON (to find the state dir)")
    .option("--state-dir <dir>", "state directory")
    .option("--json", "print JSON")
    .action(async (o: { config?: string; stateDir?: string; json?: boolean }) => {
      let stateDir = o.stateDir;
      if (!stateDir) {
        stateDir = o.config ? (await resolveConfig(o)).state_dir : defaultStateDir();
      }
      let doc: { status?: string; modules?: { agents?: Record<string, unknown> } };
      try {
        doc = JSON.parse(await Deno.readTextFile(join(stateDir, "health.json")));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) {
          throw new CliError(`no daemon has run on state dir "${stateDir}" (no health.json)`);
        }
        throw new CliError(`cannot read health of "${stateDir}": ${(err as Error).message}`);
      }
      const section = doc.modules?.agents ?? {};
      const agents = (section.agents ?? []) as AgentRow[];
      const policy = section.policy ?? null;
      if (o.json) {
        out(JSON.stringify({ daemon: doc.status ?? null, policy, agents }, null, 2));
        return;
      }
      const p = policy as { sha256?: string | null; path?: string | null; error?: string | null };
      out(
        `policy: ${p?.sha256 ? `${p.path} (sha256 ${p.sha256.slice(0, 12)})` : "none"}${
          p?.error ? `  ERROR: ${p.error}` : ""
        }`,
      );
      if (!agents.length) {
        out("no agents");
        return;
      }
      for (const a of agents) {
        out(
          [
            a.name.padEnd(20),
            (a.state ?? a.status).padEnd(16),
            `v${a.version ?? "-"}`.padEnd(5),
            (a.sha256 ?? "-").slice(0, 12),
            `signer ${(a.signer ?? "-").slice(0, 12)}`,
            `grants ${grantSummary(a.grants)}`,
            `mem ${a.limits?.memory_mb ?? "-"}MiB fuel ${a.limits?.fuel ?? "-"}`,
            a.held ? `held: ${a.held}` : "",
            a.last_error ? `error: ${a.last_error}` : "",
          ].filter(Boolean).join("  "),
        );
      }
    });
}
