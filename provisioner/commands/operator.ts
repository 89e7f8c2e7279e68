/**
 * mr-saas commands: `operator init`, `account add|list|revoke`, `backend init|link`,
 * `token issue|list|revoke`, `serve`, `node revoke`, `audit verify`, `trust add` (issue 5).
 *
 * @module
 */
import type { Command } from "commander";
import { serveMediators } from "../mediators.ts";
import { join } from "node:path";
import {
  addAccount,
  initOperator,
  listAccounts,
  relinkBackend,
  revokeAccount,
  revokeUser,
  setupBackend,
} from "../operator.ts";
import { readHome, writeHome } from "../home.ts";
import { issueToken, listTokens, revokeToken } from "../tokens.ts";
import { findNode } from "../nodes.ts";
import { serveProvisioner } from "../service.ts";
import { verifyAudit } from "../audit.ts";
import { withRecords } from "../records.ts";
import { DEFAULT_RATE_PER_MINUTE, parseRate } from "../limits.ts";
import { CliError, UsageError } from "../../src/cli/errors.ts";
import { parseDuration } from "../../src/util/duration.ts";
import { homeOption as home, serverOption as server } from "../options.ts";

const srvOpt = (cmd: Command) => (server(cmd) ? { server: server(cmd)! } : {});

/** Registers this concern's commands on `program`. */
export function registerOperatorCommands(program: Command): void {
  const op = program.command("operator").description("the NATS operator (vendor home)");
  op.command("init")
    .description(
      "create operator and system account keys, nats-server.conf (full resolver) and mr-saas.json",
    )
    .option("--nats-port <port>", "client port in nats-server.conf", "4222")
    .action(async (o: { natsPort: string }, cmd: Command) => {
      const h = home(cmd);
      await Deno.mkdir(h, { recursive: true, mode: 0o700 });
      const cfg = await initOperator(h, { natsPort: Number(o.natsPort) });
      console.log(JSON.stringify({ ...cfg, config: join(h, "nats-server.conf") }));
    });

  const account = program.command("account").description("customer accounts");
  account.command("add")
    .argument("<customer>")
    .description("create a customer account (JetStream enabled) and push it to the running server")
    .action(async (customer: string, _o: unknown, cmd: Command) => {
      const r = await addAccount(home(cmd), customer, {
        ...(server(cmd) ? { server: server(cmd)! } : {}),
      });
      console.log(JSON.stringify({ customer, account: r.account, admin_creds: r.adminCreds }));
    });
  account.command("list").description("list customer accounts").action(
    async (_o: unknown, cmd: Command) => {
      for (const a of await listAccounts(home(cmd))) console.log(`${a.customer}\t${a.account}`);
    },
  );
  account.command("revoke")
    .argument("<customer>")
    .description(
      "revoke every user of a customer's account (nodes are dropped and refused) and refuse its enrolments",
    )
    .action(async (customer: string, _o: unknown, cmd: Command) => {
      await revokeAccount(home(cmd), customer, {
        ...(server(cmd) ? { server: server(cmd)! } : {}),
      });
      console.log(JSON.stringify({ revoked: customer }));
    });

  const backend = program.command("backend").description(
    "the vendor backend's view: every customer's events in one stream (MR_EVENTS_ALL)",
  );
  backend.command("init")
    .description(
      "create the backend account, link every customer account and create MR_EVENTS_ALL (idempotent)",
    )
    .option("--max-age <duration>", "how long MR_EVENTS_ALL keeps events", "30d")
    .action(async (o: { maxAge: string }, cmd: Command) => {
      const info = await setupBackend(home(cmd), {
        maxAge: o.maxAge,
        ...(server(cmd) ? { server: server(cmd)! } : {}),
      });
      console.log(JSON.stringify(info));
    });
  backend.command("link")
    .description("re-link every customer account into the backend account")
    .action(async (_o: unknown, cmd: Command) => {
      const info = await relinkBackend(home(cmd), {
        ...(server(cmd) ? { server: server(cmd)! } : {}),
      });
      console.log(JSON.stringify(info));
    });

  program.command("trust")
    .description("add a spec-signing public key to the trust list handed to new nodes")
    .argument("<public-key>")
    .action(async (key: string, _o: unknown, cmd: Command) => {
      const h = home(cmd);
      const cfg = await readHome(h);
      if (!cfg.spec_keys.includes(key)) cfg.spec_keys.push(key);
      await writeHome(h, cfg);
    });

  const token = program.command("token").description("provisioning tokens");
  token.command("issue")
    .description("issue a provisioning JWT (printed on stdout)")
    .requiredOption("--customer <c>")
    .requiredOption("--site <s>")
    .requiredOption("--provisioner <url>", "provisioner URL the node enrols with")
    .option("--ttl <d>", "lifetime", "24h")
    .option("--max-nodes <n>", "how many nodes may enrol with it", "1")
    .option("--role <role>", "auto | leader | follower", "auto")
    .option("--ext <json>", "free-form extensions (JSON)")
    .option(
      "--allow-http",
      "let the node enrol over plain http:// with a non-loopback provisioner (otherwise refused)",
    )
    .action(
      async (
        o: {
          customer: string;
          site: string;
          provisioner: string;
          ttl: string;
          maxNodes: string;
          role: string;
          ext?: string;
          allowHttp?: boolean;
        },
        cmd: Command,
      ) => {
        let ttlMs: number;
        let ext: Record<string, unknown> = {};
        try {
          ttlMs = parseDuration(o.ttl);
          if (o.ext) ext = JSON.parse(o.ext);
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        if (!["auto", "leader", "follower"].includes(o.role)) {
          throw new UsageError("--role must be auto, leader or follower");
        }
        const r = await issueToken(home(cmd), {
          customer: o.customer,
          site: o.site,
          provisioner: o.provisioner,
          ttlMs,
          maxNodes: Number(o.maxNodes),
          role: o.role as "auto",
          ext,
          ...(o.allowHttp ? { allowHttp: true } : {}),
          ...(server(cmd) ? { server: server(cmd)! } : {}),
        });
        console.log(r.token);
      },
    );

  token.command("list")
    .description("issued tokens: id, customer, site, uses, expiry, revoked")
    .option("--json", "print the token records as JSON")
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const tokens = await listTokens(home(cmd), srvOpt(cmd));
      if (o.json) {
        console.log(JSON.stringify(tokens));
        return;
      }
      for (const t of tokens) {
        console.log([
          t.jti,
          t.customer,
          t.site,
          `${t.uses}/${t.max_nodes}`,
          new Date(t.exp * 1000).toISOString(),
          t.revoked ? "revoked" : "",
        ].join("\t"));
      }
    });
  token.command("revoke")
    .argument("<id>", "token id (jti, see token list)")
    .description("refuse every later enrolment with this token")
    .action(async (jti: string, _o: unknown, cmd: Command) => {
      try {
        await revokeToken(home(cmd), jti, server(cmd) ? { server: server(cmd)! } : {});
      } catch (err) {
        if (err instanceof TypeError) throw new UsageError(err.message);
        throw err;
      }
      console.log(JSON.stringify({ revoked: jti }));
    });

  program.command("serve")
    .description("run the provisioner (POST /v1/enroll, /v1/renew)")
    .option("--listen <host:port>", "listen address", "127.0.0.1:8470")
    .option("--webhook <url>", "vendor webhook deciding on each enrolment")
    .option(
      "--rate-limit <rate>",
      "requests per client address (N/min, N/s or N/h)",
      `${DEFAULT_RATE_PER_MINUTE}/min`,
    )
    .option("--no-mediator", "do not run the governor mediator for the customer accounts")
    .action(
      async (
        o: { listen: string; webhook?: string; rateLimit: string; mediator: boolean },
        cmd: Command,
      ) => {
        const [hostname, port] = o.listen.split(":");
        let ratePerMinute: number;
        try {
          ratePerMinute = parseRate(o.rateLimit);
        } catch (err) {
          throw new UsageError(`--rate-limit: ${(err as Error).message}`);
        }
        const srv = await serveProvisioner({
          home: home(cmd),
          hostname: hostname ?? "127.0.0.1",
          port: Number(port ?? 8470),
          ratePerMinute,
          ...(o.webhook ? { webhook: o.webhook } : {}),
          ...(server(cmd)
            ? { servers: server(cmd)!.split(",").map((s) => s.trim()).filter(Boolean) }
            : {}),
        });
        // releases and creation of governors for nodes (docs/fleet.md "Governors")
        const mediators = o.mediator
          ? await serveMediators(home(cmd), {
            ...(server(cmd)
              ? { servers: server(cmd)!.split(",").map((s) => s.trim()).filter(Boolean) }
              : {}),
            onError: (customer, err) =>
              console.error(JSON.stringify({
                level: "warn",
                msg: "governor mediator not started",
                customer,
                error: String(err),
              })),
          })
          : null;
        console.error(JSON.stringify({
          msg: "provisioner listening",
          port: srv.addr.port,
          mediators: mediators?.customers() ?? [],
        }));
        // SIGTERM/SIGINT: finish the requests in flight and their audit records, then exit
        let stopping: Promise<void> | null = null;
        const stop = () => {
          stopping ??= srv.shutdown();
        };
        Deno.addSignalListener("SIGTERM", stop);
        Deno.addSignalListener("SIGINT", stop);
        await srv.finished;
        await stopping;
        Deno.removeSignalListener("SIGTERM", stop);
        Deno.removeSignalListener("SIGINT", stop);
        await mediators?.stop();
      },
    );

  program.command("node")
    .description("nodes")
    .command("revoke")
    .argument("<site.node>")
    .description(
      "revoke a node's credentials (every key it enrolled with): the server drops and refuses it; it can enrol again only with a new token",
    )
    .option("--customer <customer>", "whose node (needed when two customers use the name)")
    .action(async (target: string, o: { customer?: string }, cmd: Command) => {
      const [site, node] = target.split(".");
      if (!site || !node) throw new UsageError("target must be <site>.<node>");
      const h = home(cmd);
      let found;
      try {
        found = await findNode(h, site, node, o.customer, srvOpt(cmd));
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      if (!found) throw new CliError(`no enrolled node ${target}`);
      await revokeUser(h, found.customer, found.users, srvOpt(cmd));
      console.log(
        JSON.stringify({ revoked: target, customer: found.customer, users: found.users }),
      );
    });

  program.command("audit")
    .description("the provisioning audit log")
    .command("verify")
    .description(
      "verify the MAC chain and the head anchored in NATS (--server); exit 1 naming the first bad record",
    )
    .option("--json", "print the result (with the head, to keep elsewhere) as JSON")
    .option("--no-anchor", "check only the file (no NATS): truncation goes undetected")
    .action(async (o: { json?: boolean; anchor: boolean }, cmd: Command) => {
      const h = home(cmd);
      const r = o.anchor
        ? await withRecords(h, srvOpt(cmd), (records) => verifyAudit(h, { records }))
        : await verifyAudit(h);
      if (o.json) console.log(JSON.stringify({ ok: r.badLine === 0, ...r }));
      if (r.badLine) throw new CliError(`audit.log line ${r.badLine}: ${r.reason}`);
      if (!o.json) {
        console.log(JSON.stringify({ ok: true, records: r.records, head: r.head }));
      }
    });
}
