/**
 * `POST /v1/enroll`: a node presents a provisioning token, its new user key and a signature
 * over a nonce; it gets a user JWT and its config, signed with the provisioner key.
 *
 * Token uses and node names are kept in the records (records.ts) with compare-and-set:
 * every enrolment counts one use, a name enrolled under another key is refused until that
 * node is revoked, and every key a name ever had is kept.
 *
 * @module
 */
import { z } from "zod";
import { idSchema } from "../src/util/ids.ts";
import { audit } from "./audit.ts";
import type { Minter } from "./credentials.ts";
import { EnrollError } from "./errors.ts";
import type { HomeConfig } from "./home.ts";
import type { Proofs } from "./proof.ts";
import { nodeKey, type NodeRecord, type Records, tokenKey, type TokenRecord } from "./records.ts";
import { verifyToken } from "./tokens.ts";

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
  records: Records;
  servers: string[];
  /** Signs the response payload with the provisioner key. */
  sign: (payload: Uint8Array) => Promise<string>;
  webhook?: string;
  now?: () => number;
}

const enc = new TextEncoder();

function b64url(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const overused = (t: TokenRecord) =>
  new EnrollError(403, "overused", `token already used by ${t.uses} of ${t.max_nodes} node(s)`);
const nameTaken = (site: string, node: string) =>
  new EnrollError(
    409,
    "name_taken",
    `${site}.${node} is enrolled under another key: revoke it first (mr-saas node revoke ${site}.${node})`,
  );

/** Creates the enrolment handler. */
export function createEnroll(
  d: EnrollDeps,
): (body: EnrollRequest, onAuthenticated?: () => void) => Promise<unknown> {
  const now = d.now ?? Date.now;
  // one enrolment per token at a time in this process: the compare-and-set then only races
  // other processes, not our own requests
  const queues = new Map<string, Promise<unknown>>();
  const serial = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const prev = queues.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    queues.set(key, tail);
    tail.then(() => queues.get(key) === tail && queues.delete(key));
    return run;
  };
  return async (body, onAuthenticated) => {
    if (!(await d.proofs.take(body.nonce))) {
      throw new EnrollError(401, "bad_nonce", "nonce unknown, used or expired");
    }
    if (!(await d.proofs.verify(body.public_key, body.nonce, body.signature))) {
      throw new EnrollError(401, "bad_proof", "signature over the nonce does not verify");
    }
    const { claims, jti } = await verifyToken(body.token, d.config.provisioner_key, now);
    onAuthenticated?.();
    const tk = tokenKey(jti);
    // the token's claims are signed, so they name the same customer and site as its record;
    // the three reads go out at once
    const nk = nodeKey(claims.customer, claims.site, body.node);
    const [rec, revs, existing] = await Promise.all([
      d.records.get<TokenRecord>("tokens", tk),
      d.records.get<Record<string, number>>("revocations", claims.customer),
      d.records.get<NodeRecord>("nodes", nk),
    ]);
    if (!rec) throw new EnrollError(401, "unknown_token", "token not issued here");
    if (rec.revoked) throw new EnrollError(401, "revoked", "token revoked");
    const { customer, site } = rec;
    if (customer !== claims.customer || site !== claims.site) {
      throw new EnrollError(401, "unknown_token", "token does not match its record");
    }
    if (revs?.["*"]) {
      throw new EnrollError(403, "account_revoked", `account "${customer}" is revoked`);
    }
    if (rec.uses >= rec.max_nodes) throw overused(rec);
    if (existing && !existing.revoked && existing.current !== body.public_key) {
      throw nameTaken(site, body.node);
    }
    let settings: Record<string, unknown> = {};
    if (d.webhook) {
      const r = await fetch(d.webhook, {
        method: "POST",
        body: JSON.stringify({
          customer,
          site,
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
    const time = new Date(now()).toISOString();
    await serial(tk, () =>
      d.records.update<TokenRecord>("tokens", tk, (cur) => {
        if (!cur) throw new EnrollError(401, "unknown_token", "token not issued here");
        if (cur.revoked) throw new EnrollError(401, "revoked", "token revoked");
        if (cur.uses >= cur.max_nodes) throw overused(cur);
        return { ...cur, uses: cur.uses + 1 };
      }));
    try {
      await d.records.update<NodeRecord>("nodes", nk, (cur) => {
        if (cur && !cur.revoked && cur.current !== body.public_key) {
          throw nameTaken(site, body.node);
        }
        return {
          customer,
          site,
          node: body.node,
          current: body.public_key,
          keys: [...(cur?.keys ?? []), { user: body.public_key, jti, time }],
          revoked: false,
        };
      });
    } catch (err) {
      // the name was taken meanwhile: this was no enrolment, give the use back
      await serial(tk, () =>
        d.records.update<TokenRecord>("tokens", tk, (cur) => ({
          ...cur!,
          uses: Math.max(0, cur!.uses - 1),
        })));
      throw err;
    }
    const userJwt = await d.minter.mint(customer, site, body.node, body.public_key);
    await audit(d.home, {
      event: "enroll",
      decision: "allow",
      jti,
      customer,
      site,
      node: body.node,
      user: body.public_key,
    }, { anchor: d.records });
    const config = {
      customer,
      site,
      node: body.node,
      nats: { servers: d.servers },
      trust: { spec_keys: d.config.spec_keys },
      ...(d.config.s3 ? { s3: d.config.s3 } : {}),
      role: claims.role,
      provisioner: { url: claims.provisioner },
      ...settings,
    };
    // signed: the node checks it against the token's issuer before trusting keys or servers
    const payload = enc.encode(JSON.stringify({
      user_jwt: userJwt,
      config,
      public_key: body.public_key,
      nonce: body.nonce,
      iat: Math.floor(now() / 1000),
    }));
    return {
      user_jwt: userJwt,
      config,
      signed: { payload: b64url(payload), signature: await d.sign(payload) },
    };
  };
}
