/**
 * mr-saas commands on the customer account's streams:
 *
 * - `init`: creates the streams and buckets of DESIGN §4 (idempotent; prints what changed).
 * - `events [--follow] [--since D] [--subject S] [--json]`: CloudEvents from `MR_EVENTS`.
 * - `nodes [--json]`: the last facts of every node (`MR_NODES`).
 * - `cmd <site>.<node> <command> [json] [--timeout D]`: request/reply to a node.
 *
 * @module
 */
import type { Command } from "commander";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { saasConnect } from "../connect.ts";
import { ensureStreams } from "../streams.ts";
import { CliError, UsageError } from "../../src/cli/errors.ts";
import { parseDuration } from "../../src/util/duration.ts";
import { out } from "../../src/cli/output.ts";
import { isNoResponders, isTimeout } from "../../src/nats/errors.ts";

const ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** One human-readable line for a CloudEvent. */
export function formatEvent(ev: Record<string, unknown>): string {
  const who = `${ev.mrsite ?? "?"}.${ev.mrnode ?? "?"}${ev.mragent ? `/${ev.mragent}` : ""}`;
  const type = String(ev.type ?? "").replace(/^io\.machineroom\./, "");
  let data = "";
  try {
    data = ev.data === undefined || ev.data === null ? "" : JSON.stringify(ev.data);
  } catch { /* unprintable */ }
  if (data.length > 160) data = data.slice(0, 157) + "...";
  return `${ev.time ?? ""}  ${who}  ${type}${data ? `  ${data}` : ""}`;
}

/** The `nodes` rows from `MR_NODES` (last facts per subject). */
export async function listNodes(nc: NatsConnection): Promise<Record<string, unknown>[]> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const info = await jsm.streams.info("MR_NODES");
  const rows: Record<string, unknown>[] = [];
  if (info.state.messages === 0) return rows;
  const consumer = await js.consumers.get("MR_NODES", {
    deliver_policy: DeliverPolicy.LastPerSubject,
  });
  const total = info.state.messages;
  const iter = await consumer.fetch({ max_messages: total, expires: 5_000 });
  for await (const m of iter) {
    const [, site, node] = m.subject.split(".");
    let f: Record<string, Record<string, unknown>> = {};
    try {
      f = m.json();
    } catch { /* not JSON: listed without details */ }
    rows.push({
      site,
      node,
      hostname: f.identity?.hostname ?? null,
      customer: f.identity?.customer ?? null,
      os: f.os ? `${f.os.distro ?? f.os.platform} ${f.os.release ?? ""}`.trim() : null,
      arch: f.os?.arch ?? null,
      cores: f.cpu?.cores ?? null,
      memory_gb: typeof f.memory?.total === "number"
        ? Math.round((f.memory.total as number) / 1e8) / 10
        : null,
      version: f.agent?.version ?? null,
      last_seen: new Date(Number(m.info.timestampNanos / 1_000_000)).toISOString(),
    });
    if (m.info.pending === 0) break;
  }
  return rows.sort((a, b) => `${a.site}.${a.node}`.localeCompare(`${b.site}.${b.node}`));
}

/** Registers this concern's commands on `program`. */
export function registerStreamCommands(program: Command): void {
  program.command("init")
    .description("create the streams and KV buckets of the wire contract (idempotent)")
    .option("--election-ttl <duration>", "TTL of the MR_ELECTION bucket (the leader lease)", "60s")
    .option("--events-max-age <duration>", "how long events and submissions are kept", "30d")
    .option("--metrics-max-age <duration>", "how long metric samples are kept", "7d")
    .option(
      "--replicas <n>",
      "copies of every stream and bucket on a clustered server (1, 3 or 5; docs/cluster.md)",
      "1",
    )
    .option("--json", "print JSON")
    .action(
      async (
        o: {
          electionTtl: string;
          eventsMaxAge: string;
          metricsMaxAge: string;
          replicas: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const replicas = Number(o.replicas);
        if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
          throw new UsageError(`--replicas must be an integer 1..5, got "${o.replicas}"`);
        }
        let opts;
        try {
          opts = {
            electionTtlMs: parseDuration(o.electionTtl),
            eventsMaxAgeMs: parseDuration(o.eventsMaxAge),
            metricsMaxAgeMs: parseDuration(o.metricsMaxAge),
            replicas,
          };
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        await using nc = await saasConnect(cmd);
        const result = await ensureStreams(nc, opts);
        if (o.json) out(JSON.stringify(result));
        else for (const [name, what] of Object.entries(result)) out(`${name.padEnd(14)} ${what}`);
      },
    );

  program.command("events")
    .description("print events from MR_EVENTS (CloudEvents JSON)")
    .option("--follow", "keep printing new events until Ctrl-C")
    .option("--since <duration>", "only events newer than this, e.g. 1h")
    .option("--subject <filter>", "subject filter, e.g. mr.site1.*.ev.agent", "mr.*.*.ev.>")
    .option("--json", "one CloudEvent JSON per line")
    .action(
      async (
        o: { follow?: boolean; since?: string; subject: string; json?: boolean },
        cmd: Command,
      ) => {
        let since: number | undefined;
        if (o.since) {
          try {
            since = Date.now() - parseDuration(o.since);
          } catch (err) {
            throw new UsageError(`--since: ${(err as Error).message}`);
          }
        }
        await using nc = await saasConnect(cmd);
        const js = jetstream(nc);
        const jsm = await jetstreamManager(nc);
        const info = await jsm.streams.info("MR_EVENTS").catch((err) => {
          throw new CliError(
            `cannot read MR_EVENTS (run \`mr-saas init\`?): ${(err as Error).message}`,
          );
        });
        // an ordered (ephemeral, flow-controlled) consumer: nothing to clean up afterwards
        const consumer = await js.consumers.get(
          "MR_EVENTS",
          {
            filter_subjects: o.subject,
            ...(since !== undefined
              ? {
                deliver_policy: DeliverPolicy.StartTime,
                opt_start_time: new Date(since).toISOString(),
              }
              : { deliver_policy: DeliverPolicy.All }),
          },
        );
        const stop = new AbortController();
        const onSig = () => stop.abort();
        if (o.follow) Deno.addSignalListener("SIGINT", onSig);
        try {
          if (!o.follow && info.state.messages === 0) return;
          const messages = await consumer.consume({ max_messages: 256 });
          stop.signal.addEventListener("abort", () => messages.stop());
          // without --follow, stop once caught up (nothing pending after a short idle)
          let idle: ReturnType<typeof setTimeout> | undefined;
          const armIdle = () => {
            if (o.follow) return;
            clearTimeout(idle);
            idle = setTimeout(() => messages.stop(), 500);
          };
          armIdle();
          for await (const m of messages) {
            let ev: Record<string, unknown>;
            try {
              ev = m.json();
            } catch {
              ev = { type: "(not JSON)", data: m.string() };
            }
            out(o.json ? JSON.stringify(ev) : formatEvent(ev));
            if (!o.follow && m.info.pending === 0) {
              clearTimeout(idle);
              messages.stop();
              break;
            }
            armIdle();
          }
          clearTimeout(idle);
        } finally {
          if (o.follow) Deno.removeSignalListener("SIGINT", onSig);
        }
      },
    );

  program.command("nodes")
    .description("list nodes with their last facts (MR_NODES)")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }, cmd: Command) => {
      await using nc = await saasConnect(cmd);
      const rows = await listNodes(nc).catch((err) => {
        throw new CliError(
          `cannot read MR_NODES (run \`mr-saas init\`?): ${(err as Error).message}`,
        );
      });
      if (o.json) {
        out(JSON.stringify(rows));
        return;
      }
      out(["SITE.NODE", "HOSTNAME", "OS", "VERSION", "LAST SEEN"].join("\t"));
      for (const r of rows) {
        out([`${r.site}.${r.node}`, r.hostname, r.os, r.version, r.last_seen].join("\t"));
      }
    });

  program.command("cmd")
    .description("send a command to a node and print its JSON reply")
    .argument("<target>", "<site>.<node>")
    .argument("<command>", "ping, health, facts, agents, invoke, …")
    .argument("[json]", "request payload (JSON)")
    .option("--timeout <duration>", "how long to wait for the reply", "10s")
    .action(
      async (
        target: string,
        command: string,
        json: string | undefined,
        o: { timeout: string },
        cmd: Command,
      ) => {
        const [site, node, ...rest] = target.split(".");
        if (!site || !node || rest.length || !ID.test(site) || !ID.test(node)) {
          throw new UsageError(`target must be <site>.<node>, got "${target}"`);
        }
        if (!ID.test(command)) throw new UsageError(`invalid command name "${command}"`);
        if (json !== undefined) {
          try {
            JSON.parse(json);
          } catch (err) {
            throw new UsageError(`payload is not valid JSON: ${(err as Error).message}`);
          }
        }
        let timeout: number;
        try {
          timeout = parseDuration(o.timeout);
        } catch (err) {
          throw new UsageError(`--timeout: ${(err as Error).message}`);
        }
        await using nc = await saasConnect(cmd);
        let reply;
        try {
          reply = await nc.request(`mr.${site}.${node}.cmd.${command}`, json ?? "", { timeout });
        } catch (err) {
          const msg = (err as Error).message;
          if (isNoResponders(err)) {
            throw new CliError(`node ${site}.${node} is not connected (no responders)`);
          }
          if (isTimeout(err)) {
            throw new CliError(`no reply from ${site}.${node} within ${o.timeout}`);
          }
          throw new CliError(`request failed: ${msg}`);
        }
        const text = new TextDecoder().decode(reply.data);
        try {
          const doc = JSON.parse(text);
          out(JSON.stringify(doc, null, 2));
          if (doc && typeof doc === "object" && "error" in doc && Object.keys(doc).length === 1) {
            Deno.exitCode = 1;
          }
        } catch {
          out(text);
        }
      },
    );
}
