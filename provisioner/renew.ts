/**
 * `POST /v1/renew`: a node presents its current user JWT and a signature over a nonce with
 * its user key; it gets a fresh user JWT.
 *
 * Everything is verified before a JWT is minted: the presented JWT's signature with the
 * signing key of the customer account it names, its expiry, the proof of possession with
 * its subject key (nonce single-use), the account's and the key's revocation, and the node
 * record: the key must be the name's current key. Site and node come from the record.
 *
 * @module
 */
import { z } from "zod";
import { isId } from "../src/util/ids.ts";
import { nkeyVerify } from "../src/util/ed25519.ts";
import { audit } from "./audit.ts";
import type { Minter } from "./credentials.ts";
import { EnrollError } from "./errors.ts";
import { listAccounts } from "./operator.ts";
import type { Proofs } from "./proof.ts";
import { nodeKey, type NodeRecord, type Records } from "./records.ts";
import { b64urlDecode } from "./tokens.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Body of `POST /v1/renew`. */
export const RenewRequestSchema = z.object({
  user_jwt: z.string().min(1).max(16_384),
  nonce: z.string().min(1).max(256),
  signature: z.string().min(1).max(256),
});

/** A validated renewal request. */
export type RenewRequest = z.infer<typeof RenewRequestSchema>;

/** What the renewal handler needs. */
export interface RenewDeps {
  home: string;
  minter: Minter;
  proofs: Proofs;
  records: Records;
  /** Signs the answer's payload with the provisioner key (base64url signature). */
  sign: (payload: Uint8Array) => Promise<string>;
  now?: () => number;
}

const UserClaimsSchema = z.object({
  sub: z.string().regex(/^U[A-Z2-7]{55}$/),
  iss: z.string(),
  name: z.string(),
  exp: z.number().optional(),
  nats: z.object({ issuer_account: z.string(), type: z.literal("user") }).loose(),
}).loose();

function b64urlText(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeJson(part: string): unknown {
  return JSON.parse(dec.decode(b64urlDecode(part)));
}

/** Creates the renewal handler. */
export function createRenew(
  d: RenewDeps,
): (body: RenewRequest, onAuthenticated?: () => void) => Promise<unknown> {
  const now = d.now ?? Date.now;
  let customers = new Map<string, string>();
  const customerOf = async (account: string) => {
    if (!customers.has(account)) {
      customers = new Map((await listAccounts(d.home)).map((a) => [a.account, a.customer]));
    }
    return customers.get(account);
  };
  return async (body, onAuthenticated) => {
    const parts = body.user_jwt.split(".");
    let header: unknown, payload: unknown;
    try {
      if (parts.length !== 3) throw new Error("not three parts");
      header = decodeJson(parts[0]!);
      payload = decodeJson(parts[1]!);
    } catch (err) {
      throw new EnrollError(400, "malformed_jwt", "user_jwt is not a JWT", { cause: err });
    }
    if ((header as { alg?: unknown })?.alg !== "ed25519-nkey") {
      throw new EnrollError(401, "bad_signature", "user_jwt is not signed with an nkey");
    }
    const c = UserClaimsSchema.safeParse(payload);
    if (!c.success) {
      const i = c.error.issues[0]!;
      throw new EnrollError(400, "malformed_jwt", `user_jwt.${i.path.join(".")}: ${i.message}`);
    }
    const claims = c.data;
    const customer = await customerOf(claims.nats.issuer_account);
    if (!customer) throw new EnrollError(401, "unknown_account", "account unknown");
    const signer = await d.minter.signer(customer);
    if (claims.iss !== signer.signerKey) {
      throw new EnrollError(
        401,
        "untrusted_jwt",
        "user_jwt is not signed by the customer account's signing key",
      );
    }
    let ok = false;
    try {
      ok = await nkeyVerify(
        claims.iss,
        enc.encode(`${parts[0]}.${parts[1]}`),
        b64urlDecode(parts[2]!),
      );
    } catch {
      ok = false;
    }
    if (!ok) throw new EnrollError(401, "bad_signature", "user_jwt signature does not verify");
    if (claims.exp === undefined) {
      throw new EnrollError(401, "untrusted_jwt", "user_jwt has no expiry: not a node credential");
    }
    if (claims.exp * 1000 <= now()) {
      throw new EnrollError(401, "expired", "user_jwt expired: enrol again with a new token");
    }
    if (!(await d.proofs.take(body.nonce))) {
      throw new EnrollError(401, "bad_nonce", "nonce unknown, used or expired");
    }
    if (!(await d.proofs.verify(claims.sub, body.nonce, body.signature))) {
      throw new EnrollError(401, "bad_proof", "signature over the nonce does not verify");
    }
    onAuthenticated?.();
    const revs = await d.records.get<Record<string, number>>("revocations", customer);
    if (revs?.["*"]) {
      throw new EnrollError(403, "account_revoked", `account "${customer}" is revoked`);
    }
    if (revs?.[claims.sub]) {
      throw new EnrollError(401, "revoked", "node revoked: enrol again with a new token");
    }
    const [site, node, ...rest] = claims.name.split(".");
    if (!site || !node || rest.length || !isId(site) || !isId(node)) {
      throw new EnrollError(401, "unknown_node", `no node named "${claims.name}"`);
    }
    const rec = await d.records.get<NodeRecord>("nodes", nodeKey(customer, site, node));
    if (!rec || !rec.keys.some((k) => k.user === claims.sub)) {
      throw new EnrollError(401, "unknown_node", `no node ${site}.${node} with this key`);
    }
    if (rec.revoked || rec.current !== claims.sub) {
      throw new EnrollError(
        401,
        "revoked",
        "node revoked or enrolled again under another key: enrol again with a new token",
      );
    }
    const userJwt = await d.minter.mint(customer, rec.site, rec.node, claims.sub);
    await audit(d.home, {
      event: "renew",
      decision: "allow",
      customer,
      node: `${rec.site}.${rec.node}`,
      user: claims.sub,
    }, { anchor: d.records });
    // signed like the enrolment answer: the node checks it with the key it enrolled with
    const answer = enc.encode(JSON.stringify({
      user_jwt: userJwt,
      public_key: claims.sub,
      nonce: body.nonce,
      iat: Math.floor(now() / 1000),
    }));
    return {
      user_jwt: userJwt,
      signed: { payload: b64urlText(answer), signature: await d.sign(answer) },
    };
  };
}
