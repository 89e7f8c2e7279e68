/**
 * Node enrolment (`machine-room provision`, `run --token`): generates the node's own
 * ed25519 user key (the seed never leaves the host), proves possession by signing the
 * provisioner's nonce, and writes `<state>/config.json`, `<state>/identity/node.nk` and
 * `<state>/identity/node.creds` (all 0600). A refused enrolment leaves nothing on disk; one
 * that got no answer keeps its key (`identity/pending.nk`, 0600) for the next try, since the
 * provisioner refuses a name already enrolled under another key.
 *
 * @module
 */
import { createUser, fromSeed } from "@nats-io/nkeys";
import { fmtCreds } from "@nats-io/jwt";
import { hostname } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { atomicWrite } from "../util/atomic_write.ts";
import { openSignedEnrolment, provisionerUrlProblem } from "./verify.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();

/** A refused or failed enrolment. */
export class ProvisionError extends Error {
  override name = "ProvisionError";
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

function b64url(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function tokenClaims(
  token: string,
): { provisioner: string; site: string; issuer: string; insecureHttp: boolean } {
  try {
    const p = token.trim().split(".")[1]!;
    const json = JSON.parse(
      dec.decode(
        Uint8Array.from(atob(p.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)),
      ),
    );
    if (typeof json.nats.provisioner !== "string" || typeof json.iss !== "string") {
      throw new Error("no provisioner or issuer");
    }
    return {
      provisioner: json.nats.provisioner,
      site: json.nats.site,
      issuer: json.iss,
      insecureHttp: json.nats.insecure_http === true,
    };
  } catch {
    throw new ProvisionError("malformed_token", "the provisioning token is not a valid JWT");
  }
}

/** A node name from the hostname (lowercased, invalid characters replaced). */
export function defaultNodeName(): string {
  const n = hostname().toLowerCase().replace(/[^a-z0-9_-]/g, "-").replace(/^[^a-z0-9]+/, "").slice(
    0,
    63,
  );
  return n || "node";
}

/** Options of {@linkcode provision}. */
export interface ProvisionOptions {
  /** The provisioning JWT (text). */
  token: string;
  stateDir: string;
  node?: string;
  logger?: Logger;
  facts?: Record<string, unknown>;
}

/** Enrols; returns the config path. */
export async function provision(o: ProvisionOptions): Promise<string> {
  const { provisioner, issuer, insecureHttp } = tokenClaims(o.token);
  const problem = provisionerUrlProblem(provisioner, insecureHttp);
  if (problem) throw new ProvisionError("insecure_provisioner", problem);
  const node = o.node ?? defaultNodeName();
  const id = join(o.stateDir, "identity");
  const pendingPath = join(id, "pending.nk");
  // a key whose enrolment got no answer (lost on the way, provisioner down) is used again:
  // the provisioner may already hold the name under it, and refuses it under any other key
  const pending = await Deno.readTextFile(pendingPath).then((t) => t.trim()).catch(() => null);
  const kp = pending ? fromSeed(enc.encode(pending)) : createUser();
  const stateExisted = await Deno.stat(o.stateDir).then(() => true, () => false);
  const forgetPending = async () => {
    await Deno.remove(pendingPath).catch(() => {});
    await Deno.remove(id).catch(() => {}); // only if empty
    if (!stateExisted) await Deno.remove(o.stateDir).catch(() => {});
  };
  const base = provisioner.replace(/\/+$/, "");
  let res: Response;
  let nonce: string;
  try {
    const n = await fetch(`${base}/v1/nonce`, { signal: AbortSignal.timeout(15_000) });
    nonce = (await n.json() as { nonce: string }).nonce;
    if (!pending) {
      await Deno.mkdir(id, { recursive: true, mode: 0o700 });
      await atomicWrite(pendingPath, dec.decode(kp.getSeed()));
    }
    res = await fetch(`${base}/v1/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      signal: AbortSignal.timeout(30_000),
      body: JSON.stringify({
        token: o.token.trim(),
        public_key: kp.getPublicKey(),
        nonce,
        signature: b64url(kp.sign(enc.encode(nonce))),
        node,
        facts: o.facts ?? null,
      }),
    });
  } catch (err) {
    throw new ProvisionError(
      "unreachable",
      `cannot reach the provisioner at ${base}: ${(err as Error).message}`,
    );
  }
  const answer = await res.json().catch(() => ({})) as {
    signed?: unknown;
    error?: { code: string; message: string };
  };
  if (!res.ok) {
    // a refusal is final (the key is of no use); a server error may have enrolled it
    if (res.status < 500) await forgetPending();
    throw new ProvisionError(
      answer.error?.code ?? "refused",
      `enrolment refused: ${answer.error?.message ?? `HTTP ${res.status}`}`,
    );
  }
  // only what the token's issuer signed for this key and nonce is used
  const body = await openSignedEnrolment(answer.signed, issuer, {
    publicKey: kp.getPublicKey(),
    nonce,
  });
  if (typeof body === "string") {
    await forgetPending();
    throw new ProvisionError("untrusted_provisioner", body);
  }
  const config = parseConfig({
    ...body.config,
    // from the token, not the answer: the key renewal answers are checked against
    provisioner: {
      ...(body.config.provisioner as object),
      key: issuer,
      ...(insecureHttp ? { insecure_http: true } : {}),
    },
    state_dir: o.stateDir,
    nats: { ...(body.config.nats as object), creds: join(id, "node.creds") },
  }, "provisioned config");
  // written only now that everything succeeded
  await Deno.mkdir(id, { recursive: true, mode: 0o700 });
  const write = (p: string, data: string | Uint8Array) => atomicWrite(p, data);
  await write(join(id, "node.nk"), dec.decode(kp.getSeed()));
  await write(join(id, "node.creds"), fmtCreds(body.user_jwt, kp));
  const path = join(o.stateDir, "config.json");
  await write(path, JSON.stringify(config, null, 2) + "\n");
  await Deno.remove(pendingPath).catch(() => {});
  o.logger?.info("enrolled", { site: config.site, node: config.node, customer: config.customer });
  return path;
}

/** The config path, enrolling first (with `token`, a JWT file path) when none exists. */
export async function ensureProvisioned(
  o: { token?: string; stateDir: string; logger: Logger; node?: string },
): Promise<string> {
  const path = join(o.stateDir, "config.json");
  try {
    await Deno.stat(path);
    return path;
  } catch { /* enrol */ }
  if (!o.token) {
    throw new ProvisionError(
      "not_provisioned",
      `no ${path}: run with --token <provisioning JWT file>`,
    );
  }
  const token = await Deno.readTextFile(o.token);
  return await provision({
    token,
    stateDir: o.stateDir,
    logger: o.logger,
    ...(o.node ? { node: o.node } : {}),
  });
}
