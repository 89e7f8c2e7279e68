/**
 * Provisioning tokens: JWTs signed with the vendor's provisioner key, their records
 * (`tokens.json`) and use journal (`token-uses.log`), and verification.
 *
 * @module
 */
import { encodeGeneric } from "@nats-io/jwt";
import { join } from "node:path";
import { nkeyVerify } from "../src/util/ed25519.ts";
import { audit } from "./audit.ts";
import { EnrollError } from "./errors.ts";
import { readSeed, writeSecret } from "./home.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Provisioning token claims (`nats` section of a generic JWT). */
export interface TokenClaims {
  customer: string;
  site: string;
  provisioner: string;
  max_nodes: number;
  role: "auto" | "leader" | "follower";
  ext: Record<string, unknown>;
}

/** A token record. */
export interface TokenRecord {
  customer: string;
  site: string;
  exp: number;
  max_nodes: number;
  uses: number;
  revoked: boolean;
  nodes: Record<string, string>;
}

/** Issued tokens (`tokens.json`) with the uses journal (`token-uses.log`) applied. */
export async function readTokens(home: string): Promise<Record<string, TokenRecord>> {
  let tokens: Record<string, TokenRecord> = {};
  try {
    tokens = JSON.parse(await Deno.readTextFile(join(home, "tokens.json")));
  } catch {
    return {};
  }
  try {
    for (const line of (await Deno.readTextFile(join(home, "token-uses.log"))).split("\n")) {
      if (!line) continue;
      const u = JSON.parse(line) as { jti: string; node: string; user: string };
      const t = tokens[u.jti];
      if (t && !t.nodes[u.node]) {
        t.uses++;
        t.nodes[u.node] = u.user;
      }
    }
  } catch { /* no uses yet */ }
  return tokens;
}

/** `token issue`: a provisioning JWT signed with the provisioner key. */
export async function issueToken(home: string, o: {
  customer: string;
  site: string;
  provisioner: string;
  ttlMs: number;
  maxNodes?: number;
  role?: TokenClaims["role"];
  ext?: Record<string, unknown>;
}): Promise<{ token: string; jti: string }> {
  if (!ID.test(o.site)) throw new TypeError(`site must match ${ID.source}`);
  try {
    await Deno.stat(join(home, "accounts", o.customer));
  } catch {
    throw new TypeError(`unknown customer "${o.customer}" (mr-saas account add ${o.customer})`);
  }
  const prov = await readSeed(join(home, "keys", "provisioner.nk"));
  const exp = Math.floor((Date.now() + o.ttlMs) / 1000);
  const claims: TokenClaims = {
    customer: o.customer,
    site: o.site,
    provisioner: o.provisioner,
    max_nodes: o.maxNodes ?? 1,
    role: o.role ?? "auto",
    ext: o.ext ?? {},
  };
  const token = await encodeGeneric(
    `${o.customer}/${o.site}`,
    prov,
    "mr-provisioning",
    claims as never,
    { exp },
  );
  const jti = JSON.parse(dec.decode(b64urlDecode(token.split(".")[1]!))).jti as string;
  const tokens = await readTokens(home);
  tokens[jti] = {
    customer: o.customer,
    site: o.site,
    exp,
    max_nodes: claims.max_nodes,
    uses: 0,
    revoked: false,
    nodes: {},
  };
  await writeSecret(join(home, "tokens.json"), JSON.stringify(tokens, null, 2));
  await audit(home, { event: "token.issue", jti, customer: o.customer, site: o.site, exp });
  return { token, jti };
}

/** Decodes base64url (padding optional). */
export function b64urlDecode(s: string): Uint8Array {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

/** Verifies a provisioning token's signature and expiry; returns its claims and jti. */
export async function verifyToken(
  token: string,
  provisionerKey: string,
): Promise<{ claims: TokenClaims; jti: string; exp: number }> {
  const parts = token.trim().split(".");
  if (parts.length !== 3) throw new EnrollError(400, "malformed_token", "token is not a JWT");
  let payload: { iss?: string; jti?: string; exp?: number; nats?: TokenClaims & { type?: string } };
  try {
    payload = JSON.parse(dec.decode(b64urlDecode(parts[1]!)));
  } catch {
    throw new EnrollError(400, "malformed_token", "token payload is not JSON");
  }
  if (payload.iss !== provisionerKey) {
    throw new EnrollError(401, "untrusted_token", "token not issued by this provisioner");
  }
  let ok = false;
  try {
    ok = await nkeyVerify(
      provisionerKey,
      enc.encode(`${parts[0]}.${parts[1]}`),
      b64urlDecode(parts[2]!),
    );
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new EnrollError(401, "bad_signature", "token signature does not verify (tampered?)");
  }
  if (!payload.exp || payload.exp * 1000 < Date.now()) {
    throw new EnrollError(401, "expired", "token expired");
  }
  if (!payload.jti || !payload.nats) {
    throw new EnrollError(400, "malformed_token", "token lacks jti/claims");
  }
  return { claims: payload.nats, jti: payload.jti, exp: payload.exp };
}

/** `token revoke`: refuses every later enrolment with this token. */
export async function revokeToken(home: string, jti: string): Promise<void> {
  const tokens = await readTokens(home);
  const t = tokens[jti];
  if (!t) throw new TypeError(`unknown token id "${jti}" (mr-saas token list)`);
  t.revoked = true;
  await writeSecret(join(home, "tokens.json"), JSON.stringify(tokens, null, 2));
  await audit(home, { event: "token.revoke", jti, customer: t.customer, site: t.site });
}

/** Issued tokens for `token list`. */
export async function listTokens(home: string): Promise<(TokenRecord & { jti: string })[]> {
  return Object.entries(await readTokens(home)).map(([jti, t]) => ({ jti, ...t }));
}
