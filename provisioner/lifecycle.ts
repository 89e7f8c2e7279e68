/**
 * Undoing a publish (DESIGN §6 `mr-saas unpublish` / `rollback`). Both write the next
 * version of the signed spec at `site.<site>` or `node.<site>.<node>`, so nodes accept
 * them like any publish (a node never takes a lower version: a rollback is a new version
 * naming an older module).
 *
 * - **unpublish** drops the agent from the key and lists it in the spec's `removed`. A
 *   node key's `removed` also hides the site key's agent of that name on that node. The
 *   node stops the agent with `mr_shutdown`, emits `agent.v1.removed`, and keeps the
 *   module in its cache.
 * - **rollback** takes the agent's spec (module, grants, config, limits…) from an earlier
 *   version in the key's KV history (`MR_DESIRED` keeps 10 per key): `toVersion`, the
 *   latest one with `toSha256`, or by default the latest one whose hash differs from the
 *   current one.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { openEnvelope, signSpec } from "../src/desired/envelope.ts";
import type { AgentSpec } from "../src/desired/spec.ts";
import { UsageError } from "../src/cli/errors.ts";

/** A spec document as read back from KV (not verified: the publisher re-signs it). */
export interface DesiredDoc {
  version: number;
  customer?: string;
  target?: string;
  agents: AgentSpec[];
  removed?: string[];
  settings?: unknown;
}

const dec = new TextDecoder();

/** Decodes an envelope's spec bytes without verifying (the caller holds the signing key). */
export function decodeDesired(value: Uint8Array): DesiredDoc {
  const env = JSON.parse(dec.decode(value)) as { spec: string };
  const bytes = Uint8Array.from(atob(env.spec), (c) => c.charCodeAt(0));
  return JSON.parse(dec.decode(bytes)) as DesiredDoc;
}

/** The KV key of a site or a node. */
export const desiredKey = (site: string, node?: string) =>
  node ? `node.${site}.${node}` : `site.${site}`;

async function current(nc: NatsConnection, key: string) {
  const kv = await new Kvm(nc).open("MR_DESIRED");
  const e = await kv.get(key);
  const doc = e && e.operation === "PUT" ? decodeDesired(e.value) : null;
  return { kv, doc };
}

async function write(
  kv: Awaited<ReturnType<Kvm["open"]>>,
  key: string,
  doc: DesiredDoc,
  o: LifecycleOptions,
): Promise<void> {
  const customer = o.customer;
  if (!customer) {
    throw new UsageError(
      "Missing --customer (the spec names its customer; it could not be read from --creds)",
    );
  }
  const spec = {
    version: doc.version,
    customer,
    target: key,
    agents: doc.agents,
    ...(doc.removed?.length ? { removed: doc.removed } : {}),
    ...(doc.settings ? { settings: doc.settings } : {}),
  };
  const envelope = signSpec(spec, o.seed);
  openEnvelope(envelope, [envelope.key]); // guards against a corrupt seed
  await kv.put(key, JSON.stringify(envelope));
}

/** Options shared by {@linkcode unpublishAgent} and {@linkcode rollbackAgent}. */
export interface LifecycleOptions {
  nc: NatsConnection;
  agent: string;
  site: string;
  node?: string;
  /** Signing key seed (`SA…`). */
  seed: string;
  /** The customer signed into the spec. @default {the current spec's} */
  customer?: string;
}

/** What `unpublish` wrote. */
export interface UnpublishResult {
  agent: string;
  key: string;
  version: number;
  /** The hash that was published at this key, if any (a node key may only hide a site agent). */
  sha256: string | null;
}

/** Removes `agent` from the key, signed with the next version. */
export async function unpublishAgent(o: LifecycleOptions): Promise<UnpublishResult> {
  const key = desiredKey(o.site, o.node);
  const { kv, doc } = await current(o.nc, key);
  const here = doc?.agents.find((a) => a.name === o.agent) ?? null;
  const site = o.node ? (await current(o.nc, desiredKey(o.site))).doc : null;
  if (!here) {
    // a node key may hide an agent published for the whole site
    const atSite = site?.agents.some((a) => a.name === o.agent);
    if (!atSite || doc?.removed?.includes(o.agent)) {
      throw new UsageError(`agent "${o.agent}" is not published at ${key}`);
    }
  }
  const next: DesiredDoc = {
    version: (doc?.version ?? 0) + 1,
    agents: (doc?.agents ?? []).filter((a) => a.name !== o.agent),
    removed: [...new Set([...(doc?.removed ?? []), o.agent])],
    ...(doc?.settings ? { settings: doc.settings } : {}),
  };
  // a new node key names the customer of the site key it hides an agent of
  const customer = o.customer ?? doc?.customer ?? site?.customer;
  await write(kv, key, next, { ...o, ...(customer ? { customer } : {}) });
  return { agent: o.agent, key, version: next.version, sha256: here?.wasm.sha256 ?? null };
}

/** Options of {@linkcode rollbackAgent}. */
export interface RollbackOptions extends LifecycleOptions {
  toVersion?: number;
  toSha256?: string;
}

/** What `rollback` wrote. */
export interface RollbackResult {
  agent: string;
  key: string;
  version: number;
  from_sha256: string | null;
  sha256: string;
  /** The earlier spec version the agent was taken from. */
  from_version: number;
}

/** Publishes an earlier module of `agent` (from the key's KV history) as the next version. */
export async function rollbackAgent(o: RollbackOptions): Promise<RollbackResult> {
  if (o.toVersion !== undefined && o.toSha256 !== undefined) {
    throw new UsageError("give --to-version or --to-sha256, not both");
  }
  const key = desiredKey(o.site, o.node);
  const { kv, doc } = await current(o.nc, key);
  if (!doc) throw new UsageError(`nothing is published at ${key}`);
  const now = doc.agents.find((a) => a.name === o.agent) ?? null;
  const versions: { version: number; agent: AgentSpec }[] = [];
  for await (const e of await kv.history({ key })) {
    if (e.operation !== "PUT") continue;
    let d: DesiredDoc;
    try {
      d = decodeDesired(e.value);
    } catch {
      continue;
    }
    const a = d.agents.find((x) => x.name === o.agent);
    if (a && d.version < doc.version) versions.push({ version: d.version, agent: a });
  }
  versions.sort((a, b) => b.version - a.version);
  const pick = o.toVersion !== undefined
    ? versions.find((v) => v.version === o.toVersion)
    : o.toSha256 !== undefined
    ? versions.find((v) => v.agent.wasm.sha256 === o.toSha256)
    : versions.find((v) => v.agent.wasm.sha256 !== now?.wasm.sha256);
  if (!pick) {
    const known = versions.map((v) => `${v.version} (${v.agent.wasm.sha256.slice(0, 12)})`)
      .join(", ") || "none";
    const what = o.toVersion !== undefined
      ? `version ${o.toVersion}`
      : o.toSha256 !== undefined
      ? `sha256 ${o.toSha256}`
      : "an earlier module";
    throw new UsageError(
      `no ${what} of agent "${o.agent}" in the history of ${key} (earlier versions: ${known})`,
    );
  }
  const next: DesiredDoc = {
    version: doc.version + 1,
    agents: [...doc.agents.filter((a) => a.name !== o.agent), pick.agent],
    removed: (doc.removed ?? []).filter((n) => n !== o.agent),
    ...(doc.settings ? { settings: doc.settings } : {}),
  };
  const customer = o.customer ?? doc.customer;
  await write(kv, key, next, { ...o, ...(customer ? { customer } : {}) });
  return {
    agent: o.agent,
    key,
    version: next.version,
    from_sha256: now?.wasm.sha256 ?? null,
    sha256: pick.agent.wasm.sha256,
    from_version: pick.version,
  };
}
