/**
 * `POST /v1/renew`: a node presents its current user JWT and a signature over a nonce with
 * its user key; it gets a fresh user JWT.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { audit } from "./audit.ts";
import type { Minter } from "./credentials.ts";
import { EnrollError } from "./errors.ts";
import { listAccounts } from "./operator.ts";
import type { Proofs } from "./proof.ts";
import { b64urlDecode } from "./tokens.ts";

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
}

/** Creates the renewal handler. */
export function createRenew(d: RenewDeps): (body: RenewRequest) => Promise<unknown> {
  return async (body) => {
    const claims = JSON.parse(
      dec.decode(b64urlDecode(body.user_jwt.split(".")[1] ?? "")),
    ) as { sub: string; name: string; nats: { issuer_account: string } };
    if (!(await d.proofs.take(body.nonce))) {
      throw new EnrollError(401, "bad_nonce", "nonce unknown or expired");
    }
    if (!(await d.proofs.verify(claims.sub, body.nonce, body.signature))) {
      throw new EnrollError(401, "bad_proof", "signature over the nonce does not verify");
    }
    const accounts = await listAccounts(d.home);
    const acct = accounts.find((a) => a.account === claims.nats.issuer_account);
    if (!acct) throw new EnrollError(401, "unknown_account", "account unknown");
    const revs = JSON.parse(
      await Deno.readTextFile(join(d.home, "accounts", acct.customer, "revocations.json")),
    );
    if (revs["*"]) {
      throw new EnrollError(403, "account_revoked", `account "${acct.customer}" is revoked`);
    }
    if (revs[claims.sub]) {
      throw new EnrollError(401, "revoked", "node revoked: enrol again with a new token");
    }
    const [site, node] = claims.name.split(".");
    const userJwt = await d.minter.mint(acct.customer, site!, node!, claims.sub);
    await audit(d.home, {
      event: "renew",
      decision: "allow",
      customer: acct.customer,
      node: claims.name,
      user: claims.sub,
    });
    return { user_jwt: userJwt };
  };
}
