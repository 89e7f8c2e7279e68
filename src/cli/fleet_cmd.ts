/**
 * Commands: `governor run NAME --capacity N [--timeout S] -- CMD…` and
 * `site broker-config` (issue 7).
 *
 * @module
 */
import type { Command } from "commander";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import type { CliContext } from "./context.ts";
import { CliError, ExitCode, UsageError } from "./errors.ts";
import { loadConfig } from "../config/schema.ts";
import { connectNode, nodeInboxPrefix } from "../nats/connect.ts";
import { parseDuration } from "../util/duration.ts";
import {
  createGovernorClient,
  type GovernorHolderId,
  validateGovernorName,
} from "../governor/mod.ts";
import { parseCredsText } from "../provision/renewal.ts";
import { isId } from "../util/ids.ts";
import { brokerConfig } from "../election/site_broker.ts";

interface ConnFlags {
  config?: string;
  server?: string;
  creds?: string;
}

/** Seconds (`30`) or a duration (`30s`, `5m`). */
function seconds(flag: string, v: string): number {
  const s = v.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  try {
    return parseDuration(s);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}

interface Connected {
  nc: NatsConnection;
  owner: string;
  holder: GovernorHolderId;
}

/** `<site>.<node>` from a provisioned user JWT's name (the provisioner sets it). */
function holderFromCreds(creds: Uint8Array): GovernorHolderId | null {
  try {
    const { jwt } = parseCredsText(new TextDecoder().decode(creds));
    const b = jwt.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const name = String(JSON.parse(atob(b)).name ?? "");
    const [site, node, ...rest] = name.split(".");
    return site && node && !rest.length && isId(site) && isId(node) ? { site, node } : null;
  } catch {
    return null;
  }
}

function parseHolder(v: string): GovernorHolderId {
  const [site, node, ...rest] = v.split(".");
  if (!site || !node || rest.length || !isId(site) || !isId(node)) {
    throw new UsageError(`--holder must be <site>.<node>, got "${v}"`);
  }
  return { site, node };
}

async function connectFor(o: ConnFlags & { holder?: string }): Promise<Connected> {
  const host = Deno.hostname();
  if (o.server) {
    let authenticator;
    let creds: Uint8Array | null = null;
    if (o.creds) {
      try {
        creds = await Deno.readFile(o.creds);
        authenticator = credsAuthenticator(creds);
      } catch (err) {
        throw new UsageError(`Cannot read --creds "${o.creds}": ${(err as Error).message}`);
      }
    }
    // a node's own creds name it; otherwise this process is its own holder
    const holder = o.holder ? parseHolder(o.holder) : (creds && holderFromCreds(creds)) ?? {
      site: "local",
      node: `${
        host.toLowerCase().replace(/[^a-z0-9_-]/g, "-").replace(/^[^a-z0-9]+/, "").slice(0, 40) ||
        "host"
      }-${Deno.pid}`,
    };
    try {
      const nc = await connect({
        servers: o.server.split(","),
        name: "machine-room governor",
        timeout: 5_000,
        inboxPrefix: nodeInboxPrefix(holder),
        ...(authenticator ? { authenticator } : {}),
      });
      return { nc, owner: `${holder.site}.${holder.node}:${Deno.pid}`, holder };
    } catch (err) {
      throw new CliError(`Cannot connect to NATS "${o.server}": ${(err as Error).message}`);
    }
  }
  if (!o.config) throw new UsageError("Give --config F (node config) or --server URL");
  const config = await loadConfig(o.config);
  try {
    const nc = await connectNode(config, `machine-room governor ${config.site}.${config.node}`);
    return {
      nc,
      owner: `${config.site}.${config.node}:${Deno.pid}`,
      holder: { site: config.site, node: config.node },
    };
  } catch (err) {
    throw new CliError(`Cannot connect to NATS: ${(err as Error).message}`, ExitCode.Runtime, {
      cause: err,
    });
  }
}

/** Exit code of a finished child the way shells report it (128 + signal number). */
function childExitCode(s: Deno.CommandStatus): number {
  if (s.signal) {
    const n: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
    return 128 + (n[s.signal] ?? 0);
  }
  return s.code;
}

/** Registers this concern's commands on `program`. */
export function registerFleetCommands(program: Command, ctx: CliContext): void {
  const governor = program.command("governor")
    .description("fleet-wide semaphores (JetStream stream MR_GOV_<name>)");

  governor.command("run")
    .description("run CMD only while holding a slot of governor NAME; exits with CMD's code")
    .argument("<name>", "governor name, e.g. rollout")
    .argument("<cmd...>", "the command (after --)")
    .requiredOption("--capacity <n>", "slots of the governor (creates/resizes it)")
    .option("--timeout <s>", "how long to wait for a slot (seconds or a duration)", "300")
    .option("--lease <s>", "slot expiry if this process dies (seconds or a duration)", "10m")
    .option("--owner <id>", "owner recorded in the slot (default: <site>.<node>:<pid>)")
    .option(
      "--holder <site.node>",
      "with --server: the holder (default: the creds' node, else local.<host>-<pid>)",
    )
    .option("--config <file>", "node config JSON (NATS servers and creds)")
    .option("--server <url>", "NATS URL (instead of --config)")
    .option("--creds <file>", "NATS creds file (with --server)")
    .action(async (
      name: string,
      cmd: string[],
      o: ConnFlags & {
        capacity: string;
        timeout: string;
        lease: string;
        owner?: string;
        holder?: string;
      },
    ) => {
      try {
        validateGovernorName(name);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const capacity = Number(o.capacity);
      if (!Number.isInteger(capacity) || capacity < 1) {
        throw new UsageError(`--capacity must be an integer ≥ 1, got "${o.capacity}"`);
      }
      const timeoutMs = seconds("--timeout", o.timeout);
      const leaseMs = seconds("--lease", o.lease);
      if (leaseMs < 1000) throw new UsageError(`--lease must be at least 1s, got "${o.lease}"`);
      if (cmd.length === 0) throw new UsageError("Missing the command to run after --");
      const log = ctx.logger.child({ component: "governor", governor: name });
      const { nc, owner: defaultOwner, holder } = await connectFor(o);
      const owner = o.owner ?? defaultOwner;
      try {
        const gov = createGovernorClient(nc, { holder });
        const lease = await gov.acquire(name, { owner, capacity, leaseMs, timeoutMs });
        if (!lease) {
          throw new CliError(
            `Timed out after ${timeoutMs / 1000} s waiting for a slot of governor "${name}" ` +
              `(capacity ${capacity})`,
          );
        }
        log.info("governor slot taken", { owner, seq: lease.seq });
        const expiry = setTimeout(() => {
          log.warn("lease expired while the command still runs: the slot is no longer held", {
            lease_ms: leaseMs,
          });
        }, leaseMs);
        let child: Deno.ChildProcess;
        try {
          child = new Deno.Command(cmd[0]!, {
            args: cmd.slice(1),
            stdin: "inherit",
            stdout: "inherit",
            stderr: "inherit",
          }).spawn();
        } catch (err) {
          clearTimeout(expiry);
          await gov.release(lease).catch(() => {});
          throw new CliError(`Cannot run "${cmd[0]}": ${(err as Error).message}`);
        }
        // Pass termination on to CMD, then release the slot on the way out.
        const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
        const forward = (sig: Deno.Signal) => () => {
          try {
            child.kill(sig);
          } catch { /* gone */ }
        };
        const handlers = signals.map((s) => [s, forward(s)] as const);
        for (const [s, h] of handlers) Deno.addSignalListener(s, h);
        let status: Deno.CommandStatus;
        try {
          status = await child.status;
        } finally {
          clearTimeout(expiry);
          for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
          const released = await gov.release(lease).catch((err) => {
            log.warn("release failed: the slot frees when the lease expires", {
              error: String(err),
            });
            return false;
          });
          log.info("governor slot released", { owner, seq: lease.seq, released });
        }
        Deno.exitCode = childExitCode(status);
      } finally {
        await nc.close().catch(() => {});
      }
    });

  const site = program.command("site").description("site topology");
  site.command("broker-config")
    .description(
      "write a nats-server config for a site broker: a leaf node of the SaaS that the site's hosts connect to",
    )
    .option("--config <file>", "node config JSON (the SaaS URL and creds)")
    .option("--out <file>", "write here instead of stdout")
    .option("--listen <host:port>", "where the site's hosts connect", "0.0.0.0:4222")
    .option(
      "--remote <url...>",
      "leafnode URL(s) of the SaaS (default: the config's servers on port 7422)",
    )
    .option("--leaf-port <port>", "SaaS leafnode port used for the default remote", "7422")
    .option("--creds <file>", "creds for the uplink (default: the config's nats.creds)")
    .option("--monitor-port <port>", "the broker's local monitoring port (0 = off)", "8222")
    .option("--json", "print {path, remotes} as JSON")
    .action(async (o: {
      config?: string;
      out?: string;
      listen: string;
      remote?: string[];
      leafPort: string;
      creds?: string;
      monitorPort: string;
      json?: boolean;
    }) => {
      if (!o.config) throw new UsageError("Missing --config F: the node config to derive it from");
      const config = await loadConfig(o.config);
      let result;
      try {
        result = brokerConfig(config, {
          listen: o.listen,
          ...(o.remote ? { remotes: o.remote } : {}),
          leafPort: Number(o.leafPort),
          monitorPort: Number(o.monitorPort),
          ...(o.creds ? { creds: o.creds } : {}),
        });
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      if (o.out) {
        await Deno.writeTextFile(o.out, result.text, { mode: 0o644 });
        if (o.json) console.log(JSON.stringify({ path: o.out, remotes: result.remotes }));
        else console.log(`wrote ${o.out} (leaf of ${result.remotes.join(", ")})`);
      } else console.log(result.text);
    });
}
