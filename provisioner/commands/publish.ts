/**
 * mr-saas commands: `key create`, `publish`, `unpublish`, `rollback`, `agents` (DESIGN §6).
 *
 * @module
 */
import type { Command } from "commander";
import { saasConnect } from "../connect.ts";
import { listPublished, publishAgent, s3FromEnv } from "../publish.ts";
import { rollbackAgent, unpublishAgent } from "../lifecycle.ts";
import { createSigningKey } from "../../src/desired/envelope.ts";
import { UsageError } from "../../src/cli/errors.ts";
import { parseDuration } from "../../src/util/duration.ts";
import { out } from "../../src/cli/output.ts";

const ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

async function jsonArg(name: string, value: string | undefined): Promise<unknown> {
  if (value === undefined) return undefined;
  const text = value.startsWith("@") ? await Deno.readTextFile(value.slice(1)) : value;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--${name} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The customer of `--creds` when it is an account's admin user (`<customer>-admin`). */
async function customerFromCreds(cmd: Command): Promise<string | undefined> {
  let root = cmd;
  while (root.parent) root = root.parent;
  const creds = root.opts<{ creds?: string }>().creds;
  if (!creds) return undefined;
  try {
    const text = await Deno.readTextFile(creds);
    const jwt = /-----BEGIN NATS USER JWT-----\s*(\S+)\s*------END/.exec(text)?.[1] ?? "";
    const b = jwt.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const name = String(JSON.parse(atob(b)).name ?? "");
    return name.endsWith("-admin") ? name.slice(0, -"-admin".length) : undefined;
  } catch {
    return undefined;
  }
}

interface PublishFlags {
  agent: string;
  customer?: string;
  minVersion?: string;
  site: string;
  node?: string;
  s3: string;
  signKey: string;
  grant?: string;
  config?: string;
  interval?: string;
  onChange?: boolean;
  limits?: string;
  match?: string;
  leaderOnly?: boolean;
  rollout?: string;
  maxFailures?: string;
  autoRollback?: boolean;
}

/** Registers this concern's commands on `program`. */
export function registerPublishCommands(program: Command): void {
  const key = program.command("key").description("spec-signing keys");
  key.command("create")
    .description(
      "create an ed25519 signing key (nkey); writes the seed 0600, prints the public key",
    )
    .requiredOption("--out <file>", "where to write the seed")
    .action(async (o: { out: string }) => {
      const k = createSigningKey();
      try {
        await Deno.writeTextFile(o.out, k.seed + "\n", { mode: 0o600, createNew: true });
      } catch (err) {
        if (err instanceof Deno.errors.AlreadyExists) {
          throw new UsageError(`${o.out} exists; refusing to overwrite a signing key`);
        }
        throw err;
      }
      await Deno.chmod(o.out, 0o600);
      out(k.publicKey);
    });

  program.command("publish")
    .description("upload an agent module by hash and publish the signed spec with the next version")
    .argument("<file>", "the agent .wasm")
    .requiredOption("--agent <name>", "agent name")
    .requiredOption("--site <site>", "site")
    .option("--node <node>", "node (a node-level key overrides the site key agent by agent)")
    .option(
      "--customer <customer>",
      "the customer the spec is for (default: from --creds, the account's <customer>-admin user)",
    )
    .option(
      "--min-version <n>",
      "publish at least this version (after wiping MR_DESIRED: above the nodes' floors)",
    )
    .requiredOption("--s3 <bucket-url>", "s3://bucket[/prefix]")
    .requiredOption("--sign-key <file>", "signing key seed file (mr-saas key create)")
    .option("--grant <json>", "grants JSON (or @file)")
    .option("--config <json>", "agent config JSON (or @file)")
    .option("--interval <duration>", "reconcile interval, e.g. 30s")
    .option("--on-change", "also reconcile when the spec or facts change")
    .option("--limits <json>", "limits JSON: fuel, memory_mb, timeout_ms, output_max_bytes")
    .option("--match <json>", 'facts match JSON, e.g. {"os.platform":"linux"}')
    .option("--leader-only", "run only on the site leader")
    .option(
      "--rollout <gov:capacity>",
      "swap only while holding a slot of this governor, e.g. rollout:2",
    )
    .option(
      "--max-failures <n|N%>",
      "with --rollout: halt once this many nodes failed on the new version",
    )
    .option("--auto-rollback", "with --rollout: failed nodes go back to the previous version")
    .action(async (file: string, o: PublishFlags, cmd: Command) => {
      for (const [n, v] of [["agent", o.agent], ["site", o.site], ["node", o.node]] as const) {
        if (v !== undefined && !ID.test(v)) throw new UsageError(`--${n} must match ${ID.source}`);
      }
      const customer = o.customer ?? await customerFromCreds(cmd);
      if (!customer || !ID.test(customer)) {
        throw new UsageError(
          "Missing --customer (the spec names its customer; it could not be read from --creds)",
        );
      }
      const minVersion = o.minVersion === undefined ? undefined : Number(o.minVersion);
      if (minVersion !== undefined && !(Number.isInteger(minVersion) && minVersion > 0)) {
        throw new UsageError(`--min-version must be a positive integer, got "${o.minVersion}"`);
      }
      const s3 = s3FromEnv();
      if (!s3) {
        throw new UsageError(
          "S3 credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL_S3 for non-AWS)",
        );
      }
      let wasm: Uint8Array;
      try {
        wasm = await Deno.readFile(file);
      } catch (err) {
        throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
      }
      let seed: string;
      try {
        seed = (await Deno.readTextFile(o.signKey)).trim();
      } catch (err) {
        throw new UsageError(`cannot read signing key ${o.signKey}: ${(err as Error).message}`);
      }
      const fields: Record<string, unknown> = {};
      const grants = await jsonArg("grant", o.grant);
      if (grants !== undefined) fields.grants = grants;
      const config = await jsonArg("config", o.config);
      if (config !== undefined) fields.config = config;
      const limits = await jsonArg("limits", o.limits);
      if (limits !== undefined) fields.limits = limits;
      const match = await jsonArg("match", o.match);
      if (match !== undefined) fields.match = match;
      if (o.interval || o.onChange) {
        if (o.interval) {
          try {
            parseDuration(o.interval);
          } catch (err) {
            throw new UsageError(`--interval: ${(err as Error).message}`);
          }
        }
        fields.triggers = {
          ...(o.interval ? { interval: o.interval } : {}),
          on_change: !!o.onChange,
        };
      }
      if (o.leaderOnly) fields.leader_only = true;
      if (o.rollout) {
        const [governor, cap] = o.rollout.split(":");
        if (!governor || !cap || !/^\d+$/.test(cap)) {
          throw new UsageError(`--rollout must be <governor>:<capacity>, got "${o.rollout}"`);
        }
        fields.rollout = {
          governor,
          capacity: Number(cap),
          ...(o.maxFailures !== undefined
            ? { max_failures: /^\d+$/.test(o.maxFailures) ? Number(o.maxFailures) : o.maxFailures }
            : {}),
          ...(o.autoRollback ? { auto_rollback: true } : {}),
        };
      } else if (o.maxFailures !== undefined || o.autoRollback) {
        throw new UsageError("--max-failures and --auto-rollback need --rollout");
      }
      await using nc = await saasConnect(cmd);
      const r = await publishAgent({
        nc,
        wasm,
        agent: o.agent,
        customer,
        ...(minVersion ? { minVersion } : {}),
        site: o.site,
        ...(o.node ? { node: o.node } : {}),
        bucketUrl: o.s3,
        s3,
        seed,
        fields,
      });
      out(JSON.stringify(r));
    });

  const readSeed = async (file: string) => {
    try {
      return (await Deno.readTextFile(file)).trim();
    } catch (err) {
      throw new UsageError(`cannot read signing key ${file}: ${(err as Error).message}`);
    }
  };
  const checkIds = (o: { agent: string; site: string; node?: string }) => {
    for (const [n, v] of [["agent", o.agent], ["site", o.site], ["node", o.node]] as const) {
      if (v !== undefined && !ID.test(v)) throw new UsageError(`--${n} must match ${ID.source}`);
    }
  };

  program.command("unpublish")
    .description(
      "remove an agent from a site (or one node), signed with the next version; nodes stop it",
    )
    .requiredOption("--agent <name>", "agent name")
    .requiredOption("--site <site>", "site")
    .option("--node <node>", "only this node (hides the site's agent there)")
    .requiredOption("--sign-key <file>", "signing key seed file (mr-saas key create)")
    .option("--customer <customer>", "the customer (default: the current spec's, or from --creds)")
    .option("--json", "print JSON")
    .action(
      async (
        o: {
          agent: string;
          site: string;
          node?: string;
          signKey: string;
          customer?: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        checkIds(o);
        const seed = await readSeed(o.signKey);
        const customer = o.customer ?? await customerFromCreds(cmd);
        await using nc = await saasConnect(cmd);
        const r = await unpublishAgent({
          nc,
          agent: o.agent,
          site: o.site,
          ...(o.node ? { node: o.node } : {}),
          seed,
          ...(customer ? { customer } : {}),
        });
        if (o.json) out(JSON.stringify(r));
        else out(`unpublished ${r.agent} at ${r.key} (version ${r.version})`);
      },
    );

  program.command("rollback")
    .description("publish an earlier module of an agent (from the KV history) as the next version")
    .requiredOption("--agent <name>", "agent name")
    .requiredOption("--site <site>", "site")
    .option("--node <node>", "the node key instead of the site key")
    .option("--to-version <v>", "the spec version to take the agent from")
    .option("--to-sha256 <hex>", "the module hash to go back to")
    .requiredOption("--sign-key <file>", "signing key seed file (mr-saas key create)")
    .option("--customer <customer>", "the customer (default: the current spec's, or from --creds)")
    .option("--json", "print JSON")
    .action(
      async (
        o: {
          agent: string;
          site: string;
          node?: string;
          customer?: string;
          toVersion?: string;
          toSha256?: string;
          signKey: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        checkIds(o);
        if (o.toVersion !== undefined && !/^[1-9]\d*$/.test(o.toVersion)) {
          throw new UsageError(`--to-version must be a positive integer, got "${o.toVersion}"`);
        }
        if (o.toSha256 !== undefined && !/^[0-9a-f]{64}$/.test(o.toSha256)) {
          throw new UsageError("--to-sha256 must be 64 lowercase hex digits");
        }
        if (o.toVersion !== undefined && o.toSha256 !== undefined) {
          throw new UsageError("give --to-version or --to-sha256, not both");
        }
        const seed = await readSeed(o.signKey);
        const customer = o.customer ?? await customerFromCreds(cmd);
        await using nc = await saasConnect(cmd);
        const r = await rollbackAgent({
          nc,
          agent: o.agent,
          site: o.site,
          ...(o.node ? { node: o.node } : {}),
          seed,
          ...(customer ? { customer } : {}),
          ...(o.toVersion !== undefined ? { toVersion: Number(o.toVersion) } : {}),
          ...(o.toSha256 !== undefined ? { toSha256: o.toSha256 } : {}),
        });
        if (o.json) out(JSON.stringify(r));
        else {
          out(
            `rolled back ${r.agent} at ${r.key} to ${
              r.sha256.slice(0, 12)
            } (from version ${r.from_version}), now version ${r.version}`,
          );
        }
      },
    );

  program.command("agents")
    .description("show the agents published for a site (and optionally a node)")
    .argument("<site>", "site")
    .option("--node <node>", "node")
    .option("--json", "print JSON")
    .action(async (site: string, o: { node?: string; json?: boolean }, cmd: Command) => {
      if (!ID.test(site)) throw new UsageError(`site must match ${ID.source}`);
      await using nc = await saasConnect(cmd);
      const k = o.node ? `node.${site}.${o.node}` : `site.${site}`;
      const doc = await listPublished(nc, k);
      if (o.json) {
        out(JSON.stringify(doc));
        return;
      }
      if (!doc) {
        out(`nothing published at ${k}`);
        return;
      }
      out(`${k}  version ${doc.version}  signed by ${doc.signer}`);
      for (const a of doc.agents) {
        out(
          `  ${a.name.padEnd(20)} ${a.wasm.sha256.slice(0, 12)}  ${a.wasm.size} B  ${a.wasm.url}`,
        );
      }
      if (doc.removed.length) out(`  removed (unpublished): ${doc.removed.join(", ")}`);
    });
}
