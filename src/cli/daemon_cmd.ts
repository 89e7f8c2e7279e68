/**
 * Commands: `run`, `status`, `facts`, `submit` (DESIGN §6).
 *
 * - `run [--config F] [--state-dir D] [--token F]`: the daemon. Without `--config` it reads
 *   `<state-dir>/config.json`; with `--token` it enrols first when no valid config exists.
 *   SIGTERM/SIGINT stop it gracefully (shutdown event, spool flush ≤ 3 s, exit 0).
 * - `status [--state-dir D | --config F] [--json]`: the local health document
 *   (`<state-dir>/health.json`, written by the running daemon). Exit 0 when a daemon is
 *   running and healthy or degraded, 1 when stopped or unhealthy.
 * - `facts [--json]`: collects and prints the facts document.
 * - `submit SUBJECT JSON [--state-dir D | --config F] [--priority N] [--ttl D]`: queues a
 *   submission for `mr.<site>.<node>.submit.<SUBJECT>` durably on disk; the running
 *   daemon (now or when it next starts) spools and replicates it.
 *
 * @module
 */
import type { Command } from "commander";
import { join, resolve } from "node:path";
import { ConfigError, loadConfig, type NodeConfig } from "../config/schema.ts";
import { startDaemon } from "../daemon/daemon.ts";
import { defaultModules } from "../daemon/modules.ts";
import { installNetworkErrorGuard } from "../daemon/guard.ts";
import { collectFacts } from "../facts/mod.ts";
import { parseDuration } from "../util/duration.ts";
import { ulid } from "../util/ulid.ts";
import { type CliContext, readAgentModule } from "./context.ts";
import { CliError, ExitCode, UsageError } from "./errors.ts";
import { out } from "./output.ts";
import { atomicWrite } from "../util/atomic_write.ts";

const SUBJECT = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** The default state directory: `$MR_STATE_DIR`, `/var/lib/machine-room` as root, else `~/.local/state/machine-room`. */
export function defaultStateDir(): string {
  const env = Deno.env.get("MR_STATE_DIR");
  if (env) return env;
  if (Deno.uid?.() === 0) return "/var/lib/machine-room";
  const home = Deno.env.get("HOME") ?? ".";
  return join(home, ".local", "state", "machine-room");
}

interface ConfigFlags {
  config?: string;
  stateDir?: string;
}

/** Loads the config from `--config` or `<state-dir>/config.json`; `--state-dir` overrides. */
export async function resolveConfig(o: ConfigFlags): Promise<NodeConfig> {
  const path = o.config ?? join(o.stateDir ?? defaultStateDir(), "config.json");
  const config = await loadConfig(path);
  if (o.stateDir) config.state_dir = o.stateDir;
  config.state_dir = resolve(config.state_dir);
  return config;
}

async function provisionIfNeeded(
  ctx: CliContext,
  token: string,
  stateDir: string,
): Promise<string> {
  // the provisioning client (issue [4/6]); loaded lazily so `run --config` never needs it
  const mod = await import("../provision/mod.ts") as {
    ensureProvisioned?: (
      o: { token?: string; stateDir: string; logger: CliContext["logger"] },
    ) => Promise<string>;
  };
  if (!mod.ensureProvisioned) throw new CliError("provisioning is not available in this build");
  return await mod.ensureProvisioned({ token, stateDir, logger: ctx.logger });
}

/** Registers this concern's commands on `program`. */
export function registerDaemonCommands(program: Command, ctx: CliContext): void {
  program.command("run")
    .description(
      "run the daemon: connect, spool, report, run the agents of the signed desired state",
    )
    .option("--config <file>", "node config JSON (default: <state-dir>/config.json)")
    .option("--state-dir <dir>", "state directory (overrides the config's state_dir)")
    .option("--token <file>", "provisioning JWT file: enrol first when no valid config exists")
    .option("--policy <file>", "local policy JSON (default: <state-dir>/policy.json if present)")
    .action(async (o: ConfigFlags & { token?: string; policy?: string }) => {
      // a socket reset nobody listens for must not end a daemon (see guard.ts)
      installNetworkErrorGuard(ctx.logger);
      let configPath = o.config;
      if (o.token && !configPath) {
        configPath = await provisionIfNeeded(ctx, o.token, o.stateDir ?? defaultStateDir());
      }
      const config = await resolveConfig({ ...o, ...(configPath ? { config: configPath } : {}) });
      const builtinAgents = Object.fromEntries(
        [...ctx.agents.keys()].map((name) => [name, () => readAgentModule(ctx, `builtin:${name}`)]),
      );
      const daemon = await startDaemon({
        config,
        logger: ctx.logger,
        version: ctx.version,
        modules: defaultModules({
          config,
          builtinAgents,
          ...(o.policy ? { policyPath: resolve(o.policy) } : {}),
          ...(configPath ? { configPath: resolve(configPath) } : {}),
        }),
      });
      const onSignal = (sig: string) => () => {
        daemon.stop(sig).catch(() => {});
      };
      const handlers: [Deno.Signal, () => void][] = [
        ["SIGTERM", onSignal("SIGTERM")],
        ["SIGINT", onSignal("SIGINT")],
      ];
      for (const [s, h] of handlers) Deno.addSignalListener(s, h);
      await daemon.stopped;
      for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    });

  program.command("status")
    .description("print the local health document of the daemon on this state dir")
    .option("--config <file>", "node config JSON (to find the state dir)")
    .option("--state-dir <dir>", "state directory")
    .option("--json", "print JSON")
    .action(async (o: ConfigFlags & { json?: boolean }) => {
      let stateDir = o.stateDir;
      if (!stateDir) {
        if (o.config) stateDir = (await resolveConfig(o)).state_dir;
        else stateDir = defaultStateDir();
      }
      let doc: Record<string, unknown>;
      try {
        doc = JSON.parse(await Deno.readTextFile(join(stateDir, "health.json")));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) {
          throw new CliError(`no daemon has run on state dir "${stateDir}" (no health.json)`);
        }
        throw new CliError(`cannot read health of "${stateDir}": ${(err as Error).message}`);
      }
      const pid = Number(doc.pid);
      let running = false;
      try {
        const livePid = Number((await Deno.readTextFile(join(stateDir, "daemon.pid"))).trim());
        running = livePid === pid && Deno.statSync(`/proc/${pid}`).isDirectory;
      } catch { /* not running */ }
      if (!running && doc.status !== "stopped") {
        doc.reasons = [...(doc.reasons as string[] ?? []), "daemon is not running"];
        doc.status = "stopped";
      }
      if (o.json) out(JSON.stringify(doc, null, 2));
      else {
        const nats = doc.nats as { connected?: boolean; server?: string } | undefined;
        const spool = doc.spool as
          | { depth?: number; dropped?: number; dead_letters?: number }
          | undefined;
        out(
          [
            `status:  ${doc.status}${
              (doc.reasons as string[])?.length ? ` (${(doc.reasons as string[]).join("; ")})` : ""
            }`,
            `node:    ${doc.site}.${doc.node} (${doc.customer}) pid ${doc.pid}, up ${doc.uptime_s}s`,
            `nats:    ${nats?.connected ? `connected to ${nats.server}` : "disconnected"}`,
            `spool:   ${spool?.depth} unsent, ${spool?.dropped} dropped, ${
              spool?.dead_letters ?? 0
            } dead letters`,
          ].join("\n"),
        );
      }
      if (doc.status === "stopped" || doc.status === "unhealthy") Deno.exitCode = ExitCode.Runtime;
    });

  program.command("facts")
    .description("collect and print this host's facts document")
    .option("--json", "print JSON (default: indented JSON)")
    .action(async (o: { json?: boolean }) => {
      const f = await collectFacts({ version: ctx.version });
      out(o.json ? JSON.stringify(f) : JSON.stringify(f, null, 2));
    });

  program.command("submit")
    .description(
      "queue a submission (JSON) for mr.<site>.<node>.submit.<SUBJECT>; the daemon delivers it",
    )
    .argument("<subject>", "submission name, e.g. orders")
    .argument("<json>", "the JSON payload (or @FILE, or - for stdin)")
    .option("--config <file>", "node config JSON")
    .option("--state-dir <dir>", "state directory")
    .option("--priority <n>", "0 (highest) … 4 (lowest)", "2")
    .option("--ttl <duration>", "drop if not delivered within this time, e.g. 7d")
    .action(
      async (
        subject: string,
        json: string,
        o: ConfigFlags & { priority: string; ttl?: string },
      ) => {
        if (!SUBJECT.test(subject)) {
          throw new UsageError(
            `invalid submission subject "${subject}": must match ${SUBJECT.source}`,
          );
        }
        let text = json;
        if (json === "-") text = await new Response(Deno.stdin.readable).text();
        else if (json.startsWith("@")) text = await Deno.readTextFile(json.slice(1));
        let payload: unknown;
        try {
          payload = JSON.parse(text);
        } catch (err) {
          throw new UsageError(`payload is not valid JSON: ${(err as Error).message}`);
        }
        const priority = Number(o.priority);
        if (!Number.isInteger(priority) || priority < 0 || priority > 4) {
          throw new UsageError(`--priority must be an integer 0..4, got "${o.priority}"`);
        }
        let ttlMs: number | undefined;
        if (o.ttl) {
          try {
            ttlMs = parseDuration(o.ttl);
          } catch (err) {
            throw new UsageError(`--ttl: ${(err as Error).message}`);
          }
        }
        let stateDir = o.stateDir;
        if (!stateDir) {
          try {
            stateDir = (await resolveConfig(o)).state_dir;
          } catch (err) {
            if (err instanceof ConfigError && !o.config) stateDir = defaultStateDir();
            else throw err;
          }
        }
        const dir = join(stateDir, "outbox");
        await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
        const id = ulid();
        const file = join(dir, `${id}.json`);
        const body = JSON.stringify({
          subject,
          payload,
          priority,
          ...(ttlMs !== undefined ? { ttl_ms: ttlMs } : {}),
        });
        await atomicWrite(file, body);
        out(JSON.stringify({ queued: id, subject, state_dir: stateDir }));
      },
    );
}
