/**
 * `mr-saas console`: serves the fleet console (provisioner/console/) until interrupted.
 *
 * @module
 */
import type { Command } from "commander";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { join } from "node:path";
import { UsageError } from "../../src/cli/errors.ts";
import { isId } from "../../src/util/ids.ts";
import type { SaasGlobalOptions } from "../options.ts";
import { audit, verifyAudit } from "../audit.ts";
import { readHome } from "../home.ts";
import { listAccounts } from "../operator.ts";
import { startConsole } from "../console/mod.ts";

function parseListen(v: string): { hostname: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen must be HOST:PORT, got "${v}"`);
  return { hostname: m[1]!.replace(/^\[|\]$/g, ""), port };
}

async function readAuditLog(home: string) {
  const verify = await verifyAudit(home).catch((err) => ({ error: (err as Error).message }));
  let records: Record<string, unknown>[] = [];
  try {
    const lines = (await Deno.readTextFile(join(home, "audit.log"))).split("\n").filter(Boolean);
    records = lines.slice(-500).reverse().map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { event: "(not JSON)", line: l.slice(0, 200) };
      }
    });
  } catch { /* no log yet */ }
  const v = verify as Record<string, unknown>;
  return { verify: { ...v, ok: !("error" in v) && v.badLine === 0 }, records };
}

/** Registers `console`. */
export function registerConsoleCommand(program: Command): void {
  program.command("console")
    .description(
      "serve the fleet console (web UI + /metrics) and print its login URL; --home D: every customer of the vendor home and its audit log (--server overrides the home's URL); else --server/--creds: one account",
    )
    .option(
      "--listen <host:port>",
      "address to bind (loopback unless you say otherwise)",
      "127.0.0.1:8480",
    )
    .option("--customer <name>", "customer name shown for --server/--creds", "default")
    .option(
      "--metrics-token-file <file>",
      "read the /metrics bearer token from this file (else random, printed)",
    )
    .option("--json", "print the URLs as JSON")
    .action(
      async (
        o: { listen: string; customer: string; metricsTokenFile?: string; json?: boolean },
        cmd: Command,
      ) => {
        let root = cmd;
        while (root.parent) root = root.parent;
        const g = root.opts<SaasGlobalOptions>();
        const { hostname, port } = parseListen(o.listen);
        const connections = new Map<string, NatsConnection>();
        let home: string | undefined;
        if (g.home) {
          home = g.home;
          const servers = (g.server ?? (await readHome(home)).server).split(",");
          for (const { customer } of await listAccounts(home)) {
            const creds = await Deno.readFile(join(home, "accounts", customer, "admin.creds"));
            connections.set(
              customer,
              await connect({
                servers,
                name: `mr-console-${customer}`,
                authenticator: credsAuthenticator(creds),
                maxReconnectAttempts: -1,
              }),
            );
          }
          if (connections.size === 0) throw new UsageError(`no customer accounts in ${home}`);
        } else {
          if (!g.server) {
            throw new UsageError("console needs --home D, or --server URL [--creds F]");
          }
          if (!isId(o.customer)) throw new UsageError(`--customer: invalid name "${o.customer}"`);
          connections.set(
            o.customer,
            await connect({
              servers: g.server.split(","),
              name: "mr-console",
              maxReconnectAttempts: -1,
              ...(g.creds
                ? { authenticator: credsAuthenticator(await Deno.readFile(g.creds)) }
                : {}),
            }),
          );
        }
        const metricsToken = o.metricsTokenFile
          ? (await Deno.readTextFile(o.metricsTokenFile)).trim()
          : undefined;
        if (metricsToken !== undefined && metricsToken.length < 16) {
          throw new UsageError("--metrics-token-file: the token must be at least 16 characters");
        }
        const c = await startConsole({
          connections,
          hostname,
          port,
          ...(metricsToken ? { metricsToken } : {}),
          ...(home
            ? {
              audit: {
                read: () => readAuditLog(home!),
                append: (r: Record<string, unknown>) => audit(home!, r),
              },
            }
            : {}),
        });
        if (o.json) {
          console.log(JSON.stringify({
            url: c.url,
            login_url: c.loginUrl,
            metrics_url: `${c.url}/metrics`,
            ...(metricsToken ? {} : { metrics_token: c.metricsToken }),
            customers: [...connections.keys()],
          }));
        } else {
          console.log(`console: ${c.url} (${[...connections.keys()].join(", ")})`);
          console.log(`log in:  ${c.loginUrl}`);
          if (!metricsToken) {
            console.log(
              `metrics: ${c.url}/metrics  (Authorization: Bearer ${c.metricsToken})`,
            );
          }
        }
        const stop = new Promise<void>((resolve) => {
          Deno.addSignalListener("SIGINT", () => resolve());
          Deno.addSignalListener("SIGTERM", () => resolve());
        });
        await stop;
        await c.close();
        for (const nc of connections.values()) await nc.close().catch(() => {});
      },
    );
}
