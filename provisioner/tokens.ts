/**
 * Provisioning tokens: JWTs signed with the vendor's provisioner key, their records in
 * `MR_PROV_TOKENS` (records.ts), and verification.
 *
 * @module
 */
import { encodeGeneric } from "@nats-io/jwt";
import { join } from "node:path";
import { isId } from "../src/util/ids.ts";
import { nkeyVerify } from "../src/util/ed25519.ts";
import { audit } from "./audit.ts";
import { EnrollError } from "./errors.ts";
import { readSeed } from "./home.ts";
import { type RecordsOption, tokenKey, type TokenRecord, withRecords } from "./records.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

export type { TokenRecord } from "./records.ts";

/** Provisioning token claims (`nats` section of a generic JWT). */
export interface TokenClaims {
  customer: string;
  site: string;
  provisioner: string;
  max_nodes: number;
  role: "auto" | "leader" | "follower";
  ext: Record<string, unknown>;
  /** The node may enrol over plain `http://` with a non-loopback provisioner. */
  insecure_http?: boolean;
  /**
   * 128 random bits. The JWT's `jti` is a hash of its claims, so without this two tokens
   * issued in the same second with the same claims would share an id (and a record).
   */
  nonce?: string;
}

/** `token issue`: a provisioning JWT signed with the provisioner key. */
export async function issueToken(
  home: string,
  o: RecordsOption & {
    customer: string;
    site: string;
    provisioner: string;
    ttlMs: number;
    maxNodes?: number;
    role?: TokenClaims["role"];
    ext?: Record<string, unknown>;
    /** Allow enrolment over plain http with a non-loopback provisioner (`--allow-http`). */
    allowHttp?: boolean;
  },
): Promise<{ token: string; jti: string }> {
  if (!isId(o.site)) throw new TypeError(`site must match ^[a-z0-9][a-z0-9_-]{0,62}$`);
  const maxNodes = o.maxNodes ?? 1;
  if (!Number.isInteger(maxNodes) || maxNodes < 1) {
    throw new TypeError(`max nodes must be a positive integer, got ${maxNodes}`);
  }
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
    max_nodes: maxNodes,
    role: o.role ?? "auto",
    ext: o.ext ?? {},
    ...(o.allowHttp ? { insecure_http: true } : {}),
    nonce: Array.from(
      crypto.getRandomValues(new Uint8Array(16)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join(""),
  };
  const token = await encodeGeneric(
    `${o.customer}/${o.site}`,
    prov,
    "mr-provisioning",
    claims as never,
    { exp },
  );
  const jti = JSON.parse(dec.decode(b64urlDecode(token.split(".")[1]!))).jti as string;
  await withRecords(home, o, async (r) => {
    const rec: TokenRecord = {
      customer: o.customer,
      site: o.site,
      exp,
      max_nodes: claims.max_nodes,
      uses: 0,
      revoked: false,
    };
    if (!(await r.create("tokens", tokenKey(jti), { ...rec, jti }))) {
      throw new Error(`token id ${jti} exists`);
    }
    await audit(home, {
      event: "token.issue",
      jti,
      customer: o.customer,
      site: o.site,
      exp,
      ...(o.allowHttp ? { insecure_http: true } : {}),
    }, { anchor: r });
  });
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
  now: () => number = Date.now,
): Promise<{ claims: TokenClaims; jti: string; exp: number }> {
  const parts = token.trim().split(".");
  if (parts.length !== 3) throw new EnrollError(400, "malformed_token", "token is not a JWT");
  let payload: { iss?: string; jti?: string; exp?: number; nats?: TokenClaims & { type?: string } };
  try {
    payload = JSON.parse(dec.decode(b64urlDecode(parts[1]!)));
  } catch (err) {
    throw new EnrollError(400, "malformed_token", "token payload is not JSON", { cause: err });
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
  if (!payload.exp || payload.exp * 1000 < now()) {
    throw new EnrollError(401, "expired", "token expired");
  }
  if (!payload.jti || !payload.nats || payload.nats.type !== "mr-provisioning") {
    throw new EnrollError(400, "malformed_token", "token lacks jti/claims");
  }
  return { claims: payload.nats, jti: payload.jti, exp: payload.exp };
}

/** `token revoke`: refuses every later enrolment with this token. */
export async function revokeToken(
  home: string,
  jti: string,
  o: RecordsOption = {},
): Promise<void> {
  await withRecords(home, o, async (r) => {
    const t = await r.update<TokenRecord>("tokens", tokenKey(jti), (cur) => {
      if (!cur) throw new TypeError(`unknown token id "${jti}" (mr-saas token list)`);
      return { ...cur, revoked: true };
    });
    await audit(home, { event: "token.revoke", jti, customer: t.customer, site: t.site }, {
      anchor: r,
    });
  });
}

/** Issued tokens for `token list`. */
export function listTokens(
  home: string,
  o: RecordsOption = {},
): Promise<(TokenRecord & { jti: string })[]> {
  return withRecords(home, o, async (r) => {
    const out = [];
    for (const jti of await r.keys("tokens")) {
      const t = await r.get<TokenRecord & { jti?: string }>("tokens", jti);
      if (t) out.push({ ...t, jti: t.jti ?? jti });
    }
    return out;
  });
}
