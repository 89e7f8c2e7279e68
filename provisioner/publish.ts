/**
 * Publishing an agent (DESIGN §6 `mr-saas publish`): upload the module to
 * `<bucket URL>/sha256/<hex>.wasm` unless it is already there, then write the signed spec
 * with the next version to KV `MR_DESIRED` (`site.<site>` or `node.<site>.<node>`).
 *
 * S3 credentials come from the standard variables `AWS_ACCESS_KEY_ID`,
 * `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and `AWS_ENDPOINT_URL_S3` (path-style requests).
 *
 * @module
 */
import { AwsClient } from "aws4fetch";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { createHash } from "node:crypto";
import { checkLoadable, inspectModule } from "../src/plugins/abi.ts";
import { openEnvelope, signSpec } from "../src/desired/envelope.ts";
import { createGovernorClient } from "../src/governor/mod.ts";
import { type AgentSpec, agentSpecSchema, formatZodError } from "../src/desired/spec.ts";
import { s3HttpUrl } from "../src/artifacts/mod.ts";
import { UsageError } from "../src/cli/errors.ts";

/** S3 access for publishing. */
export interface S3Access {
  endpoint?: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** S3 access from the standard AWS environment variables (or `null` when unset). */
export function s3FromEnv(): S3Access | null {
  const accessKeyId = Deno.env.get("AWS_ACCESS_KEY_ID");
  const secretAccessKey = Deno.env.get("AWS_SECRET_ACCESS_KEY");
  if (!accessKeyId || !secretAccessKey) return null;
  const endpoint = Deno.env.get("AWS_ENDPOINT_URL_S3") ?? Deno.env.get("AWS_ENDPOINT_URL");
  return {
    accessKeyId,
    secretAccessKey,
    region: Deno.env.get("AWS_REGION") ?? "us-east-1",
    ...(endpoint ? { endpoint } : {}),
  };
}

/** Options of {@linkcode publishAgent}. */
export interface PublishOptions {
  nc: NatsConnection;
  wasm: Uint8Array;
  agent: string;
  /** The customer (its account): signed into the spec; nodes of other customers refuse it. */
  customer: string;
  site: string;
  node?: string;
  /**
   * Publish at least this version (after the bucket was wiped, nodes keep their version
   * floors: publish above the highest version they applied).
   */
  minVersion?: number;
  /** `s3://bucket[/prefix]` */
  bucketUrl: string;
  s3: S3Access;
  /** Signing key seed (`SA…`). */
  seed: string;
  /** Extra agent fields (config, grants, triggers, limits, match, leader_only, rollout). */
  fields?: Record<string, unknown>;
}

/** What was published. */
export interface PublishResult {
  agent: string;
  key: string;
  version: number;
  sha256: string;
  size: number;
  url: string;
  uploaded: boolean;
}

/** Uploads (once per hash) and writes the signed spec with the next version. */
export async function publishAgent(o: PublishOptions): Promise<PublishResult> {
  const m = /^s3:\/\/([^/]+)(\/.*)?$/.exec(o.bucketUrl);
  if (!m) throw new UsageError(`--s3 must look like s3://bucket[/prefix], got "${o.bucketUrl}"`);
  const prefix = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
  const sha256 = createHash("sha256").update(o.wasm).digest("hex");
  const url = `s3://${m[1]}/${prefix ? prefix + "/" : ""}sha256/${sha256}.wasm`;

  const fields = o.fields ?? {};
  const candidate = {
    name: o.agent,
    wasm: { sha256, size: o.wasm.length, url },
    ...fields,
  };
  const parsed = agentSpecSchema.safeParse(candidate);
  if (!parsed.success) throw new UsageError(`Invalid agent spec: ${formatZodError(parsed.error)}`);
  const agentSpec: AgentSpec = parsed.data;
  // the module must be loadable with the grants it is published with
  const info = await inspectModule(o.wasm).catch((err) => {
    throw new UsageError(`Not a valid WASM module: ${(err as Error).message}`);
  });
  try {
    checkLoadable(info, agentSpec.grants);
  } catch (err) {
    throw new UsageError(`Module refused with these grants: ${(err as Error).message}`);
  }

  const aws = new AwsClient({
    accessKeyId: o.s3.accessKeyId,
    secretAccessKey: o.s3.secretAccessKey,
    region: o.s3.region,
    service: "s3",
  });
  const httpUrl = s3HttpUrl(url, {
    region: o.s3.region,
    access_key_id: o.s3.accessKeyId,
    secret_access_key: o.s3.secretAccessKey,
    ...(o.s3.endpoint ? { endpoint: o.s3.endpoint } : {}),
  });
  const head = await aws.fetch(httpUrl, { method: "HEAD" });
  let uploaded = false;
  if (!head.ok) {
    const put = await aws.fetch(httpUrl, {
      method: "PUT",
      body: o.wasm as Uint8Array<ArrayBuffer>,
      headers: { "content-type": "application/wasm" },
    });
    if (!put.ok) {
      throw new Error(`upload to ${url} failed: HTTP ${put.status} ${await put.text()}`);
    }
    uploaded = true;
  }

  const key = o.node ? `node.${o.site}.${o.node}` : `site.${o.site}`;
  const kv = await new Kvm(o.nc).open("MR_DESIRED");
  let agents: AgentSpec[] = [];
  let version = 0;
  let settings: unknown;
  let removed: string[] = [];
  const cur = await kv.get(key);
  if (cur && cur.operation === "PUT") {
    // read the current spec without a trust list: the publisher re-signs what it keeps
    const env = cur.json<{ spec: string }>();
    const bytes = Uint8Array.from(atob(env.spec), (c) => c.charCodeAt(0));
    const doc = JSON.parse(new TextDecoder().decode(bytes)) as {
      version: number;
      agents: AgentSpec[];
      settings?: unknown;
      removed?: string[];
    };
    version = doc.version;
    agents = doc.agents.filter((a) => a.name !== o.agent);
    settings = doc.settings;
    // publishing again undoes an unpublish of this agent at this key
    removed = (doc.removed ?? []).filter((n) => n !== o.agent);
  }
  const spec = {
    version: Math.max(version + 1, o.minVersion ?? 0),
    customer: o.customer,
    target: key,
    agents: [...agents, agentSpec],
    ...(removed.length ? { removed } : {}),
    ...(settings ? { settings } : {}),
  };
  // the first rollout creates its governor (the vendor's capacity; nodes cannot create streams)
  const rollout = (o.fields?.rollout ?? null) as { governor?: string; capacity?: number } | null;
  if (rollout?.governor && rollout.capacity) {
    const gov = createGovernorClient(o.nc);
    if (!(await gov.info(rollout.governor))) await gov.ensure(rollout.governor, rollout.capacity);
  }
  const envelope = signSpec(spec, o.seed);
  // the envelope must open with its own key (guards against a corrupt seed)
  openEnvelope(envelope, [envelope.key]);
  await kv.put(key, JSON.stringify(envelope));
  return { agent: o.agent, key, version: spec.version, sha256, size: o.wasm.length, url, uploaded };
}

/** The agents published at a key (decoded without verification, for display). */
export async function listPublished(
  nc: NatsConnection,
  key: string,
): Promise<
  { version: number; signer: string; agents: AgentSpec[]; removed: string[] } | null
> {
  const kv = await new Kvm(nc).open("MR_DESIRED");
  const cur = await kv.get(key);
  if (!cur || cur.operation !== "PUT") return null;
  const env = cur.json<{ spec: string; key: string }>();
  const bytes = Uint8Array.from(atob(env.spec), (c) => c.charCodeAt(0));
  const doc = JSON.parse(new TextDecoder().decode(bytes));
  return { version: doc.version, signer: env.key, agents: doc.agents, removed: doc.removed ?? [] };
}
