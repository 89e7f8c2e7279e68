/**
 * `POST /v1/enroll`: a node presents a provisioning token, its new user key and a signature
 * over a nonce; it gets a user JWT and its config.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { idSchema } from "../src/util/ids.ts";
import { audit } from "./audit.ts";
import type { Minter } from "./credentials.ts";
import { EnrollError } from "./errors.ts";
import type { HomeConfig } from "./home.ts";
import { accountRevoked } from "./operator.ts";
import type { Proofs } from "./proof.ts";
import { readTokens, type TokenRecord, verifyToken } from "./tokens.ts";

/** Body of `POST /v1/enroll`. */
export const EnrollRequestSchema = z.object({
  token: z.string().min(1).max(16_384),
  public_key: z.string().regex(/^U[A-Z2-7]{55}$/, { message: "not a user public key (U…)" }),
  nonce: z.string().min(1).max(256),
  signature: z.string().min(1).max(256),
  node: idSchema,
  facts: z.record(z.string(), z.unknown()).nullable().optional(),
});

/** A validated enrolment request. */
export type EnrollRequest = z.infer<typeof EnrollRequestSchema>;

/** What the enrolment handler needs. */
export interface EnrollDeps {
  home: string;
  config: HomeConfig;
  minter: Minter;
  proofs: Proofs;
  servers: string[];
  webhook?: string;
}

/** Creates the enrolment handler (token records read from the home's files). */
export function createEnroll(d: EnrollDeps): (body: EnrollRequest) => Promise<unknown> {
  let tokens: Record<string, TokenRecord> = {};
  const tokensFile = join(d.home, "tokens.json");
  let tokensMtime = -1;
  let lockTail: Promise<unknown> = Promise.resolve();
  const locked = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = lockTail.then(fn, fn);
    lockTail = run.catch(() => {});
    return run;
  };
  return async (body) => {
    if (!(await d.proofs.take(body.nonce))) {
      throw new EnrollError(401, "bad_nonce", "nonce unknown or expired");
    }
    if (!(await d.proofs.verify(body.public_key, body.nonce, body.signature))) {
      throw new EnrollError(401, "bad_proof", "signature over the nonce does not verify");
    }
    const { claims, jti } = await verifyToken(body.token, d.config.provisioner_key);
    // `token issue` / `token revoke` (other processes) rewrite tokens.json
    const mtime = (await Deno.stat(tokensFile).catch(() => null))?.mtime?.getTime() ?? 0;
    if (mtime !== tokensMtime || !tokens[jti]) {
      tokensMtime = mtime;
      tokens = await readTokens(d.home);
    }
    const rec = tokens[jti];
    if (!rec) throw new EnrollError(401, "unknown_token", "token not issued here");
    if (rec.revoked) throw new EnrollError(401, "revoked", "token revoked");
    if (await accountRevoked(d.home, claims.customer)) {
      throw new EnrollError(403, "account_revoked", `account "${claims.customer}" is revoked`);
    }
    if (rec.uses >= rec.max_nodes) {
      throw new EnrollError(
        403,
        "overused",
        `token already used by ${rec.uses} of ${rec.max_nodes} node(s)`,
      );
    }
    let settings: Record<string, unknown> = {};
    if (d.webhook) {
      const r = await fetch(d.webhook, {
        method: "POST",
        body: JSON.stringify({
          customer: claims.customer,
          site: claims.site,
          node: body.node,
          facts: body.facts ?? null,
          ext: claims.ext,
        }),
        signal: AbortSignal.timeout(10_000),
      });
      const w = await r.json().catch(() => ({})) as {
        allow?: boolean;
        settings?: Record<string, unknown>;
      };
      if (!r.ok || w.allow !== true) {
        throw new EnrollError(403, "denied", "the vendor's webhook denied this node");
      }
      settings = w.settings ?? {};
    }
    const userJwt = await d.minter.mint(claims.customer, claims.site, body.node, body.public_key);
    // the use is counted in memory at once (concurrent enrolments cannot overuse)
    // and journaled (append-only) before the node gets its credentials
    if (rec.uses >= rec.max_nodes) {
      throw new EnrollError(
        403,
        "overused",
        `token already used by ${rec.uses} of ${rec.max_nodes} node(s)`,
      );
    }
    rec.uses++;
    rec.nodes[body.node] = body.public_key;
    await locked(() =>
      Deno.writeTextFile(
        join(d.home, "token-uses.log"),
        JSON.stringify({
          jti,
          node: body.node,
          user: body.public_key,
          time: new Date().toISOString(),
        }) + "\n",
        { append: true, mode: 0o600 },
      )
    );
    await audit(d.home, {
      event: "enroll",
      decision: "allow",
      jti,
      customer: claims.customer,
      site: claims.site,
      node: body.node,
      user: body.public_key,
    });
    return {
      user_jwt: userJwt,
      config: {
        customer: claims.customer,
        site: claims.site,
        node: body.node,
        nats: { servers: d.servers },
        trust: { spec_keys: d.config.spec_keys },
        ...(d.config.s3 ? { s3: d.config.s3 } : {}),
        role: claims.role,
        provisioner: { url: claims.provisioner },
        ...settings,
      },
    };
  };
}
