/**
 * The enrolment service (`mr-saas serve`): `GET /v1/nonce`, `POST /v1/enroll`,
 * `POST /v1/renew`. Nodes prove possession of their key by signing a nonce; they get a
 * user JWT limited to their own subjects ({@linkcode nodePermissions}).
 *
 * @module
 */
import { fromSeed } from "@nats-io/nkeys";
import { join } from "node:path";
import { encodeUserJwt, nkeySigner, nkeyVerify } from "../src/util/ed25519.ts";
import { audit } from "./audit.ts";
import { accountRevoked, listAccounts, readHome, readSeed } from "./operator.ts";
import { nodePermissions } from "./permissions.ts";
import { b64urlDecode, EnrollError, readTokens, verifyToken } from "./tokens.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Options of {@linkcode serveProvisioner}. */
export interface ServeOptions {
  home: string;
  hostname?: string;
  port?: number;
  /** NATS URL(s) the nodes get. @default {the home's server} */
  servers?: string[];
  /** User JWT lifetime. @default {30 days} */
  credsTtlMs?: number;
  /** Optional vendor webhook: POST {customer, site, node, facts, ext} → {allow, settings?}. */
  webhook?: string;
  /** Enrolments per minute per client address. @default {600000} */
  ratePerMinute?: number;
}

/** Starts the enrolment service. */
export async function serveProvisioner(o: ServeOptions): Promise<Deno.HttpServer<Deno.NetAddr>> {
  const h = await readHome(o.home);
  const nonces = new Map<string, number>();
  const buckets = new Map<string, { tokens: number; at: number }>();
  const rate = o.ratePerMinute ?? 600_000;
  const credsTtl = o.credsTtlMs ?? 30 * 86_400_000;
  let tokens = await readTokens(o.home);
  const tokensFile = join(o.home, "tokens.json");
  let tokensMtime = (await Deno.stat(tokensFile).catch(() => null))?.mtime?.getTime() ?? 0;
  let lockTail: Promise<unknown> = Promise.resolve();
  const locked = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = lockTail.then(fn, fn);
    lockTail = run.catch(() => {});
    return run;
  };
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  const limited = (ip: string) => {
    const now = Date.now();
    const b = buckets.get(ip) ?? { tokens: rate, at: now };
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 60_000) * rate);
    b.at = now;
    buckets.set(ip, b);
    if (b.tokens < 1) return true;
    b.tokens -= 1;
    return false;
  };
  const takeNonce = (n: unknown) => {
    if (typeof n !== "string") return false;
    const exp = nonces.get(n);
    nonces.delete(n);
    return exp !== undefined && exp > Date.now();
  };
  const proveKey = async (pub: string, nonce: string, sig: string) => {
    try {
      if (!pub.startsWith("U")) return false;
      return await nkeyVerify(pub, enc.encode(nonce), b64urlDecode(sig));
    } catch {
      return false;
    }
  };
  // per customer: the account key and a WebCrypto signer for its signing key
  const signers = new Map<
    string,
    Promise<{ account: string; signerKey: string; sign: (d: Uint8Array) => Promise<Uint8Array> }>
  >();
  const signerFor = (customer: string) => {
    let s = signers.get(customer);
    if (!s) {
      s = (async () => {
        const dir = join(o.home, "accounts", customer);
        const acct = await readSeed(join(dir, "account.nk"));
        const seed = (await Deno.readTextFile(join(dir, "signer.nk"))).trim();
        return {
          account: acct.getPublicKey(),
          signerKey: fromSeed(enc.encode(seed)).getPublicKey(),
          sign: await nkeySigner(seed),
        };
      })();
      signers.set(customer, s);
    }
    return s;
  };
  const mint = async (customer: string, site: string, node: string, userKey: string) => {
    const k = await signerFor(customer);
    // built and signed natively: @nats-io/jwt's pure-JS key handling costs ~50 ms per JWT
    return await encodeUserJwt({
      name: `${site}.${node}`,
      userKey,
      issuerAccount: k.account,
      signerKey: k.signerKey,
      sign: k.sign,
      permissions: nodePermissions(site, node),
      exp: Math.floor((Date.now() + credsTtl) / 1000),
    });
  };

  return Deno.serve(
    { hostname: o.hostname ?? "127.0.0.1", port: o.port ?? 0, onListen() {} },
    async (req, info) => {
      const url = new URL(req.url);
      const ip = (info.remoteAddr as Deno.NetAddr).hostname;
      if (limited(ip)) {
        return json(429, {
          error: { code: "rate_limited", message: "too many requests" },
        });
      }
      try {
        if (req.method === "GET" && url.pathname === "/v1/nonce") {
          const nonce = crypto.randomUUID();
          nonces.set(nonce, Date.now() + 60_000);
          if (nonces.size > 100_000) {
            for (const [k, v] of nonces) if (v < Date.now()) nonces.delete(k);
          }
          return json(200, { nonce });
        }
        if (req.method === "POST" && url.pathname === "/v1/enroll") {
          const body = await req.json().catch(() => null) as Record<string, unknown> | null;
          if (
            !body || typeof body.token !== "string" || typeof body.public_key !== "string" ||
            typeof body.signature !== "string" || typeof body.node !== "string"
          ) {
            throw new EnrollError(
              400,
              "bad_request",
              "need {token, public_key, nonce, signature, node}",
            );
          }
          if (!ID.test(body.node)) {
            throw new EnrollError(
              400,
              "bad_request",
              `node must match ${ID.source}`,
            );
          }
          if (!takeNonce(body.nonce)) {
            throw new EnrollError(
              401,
              "bad_nonce",
              "nonce unknown or expired",
            );
          }
          if (!(await proveKey(body.public_key, body.nonce as string, body.signature))) {
            throw new EnrollError(401, "bad_proof", "signature over the nonce does not verify");
          }
          const { claims, jti } = await verifyToken(body.token, h.provisioner_key);
          // `token issue` / `token revoke` (other processes) rewrite tokens.json
          const mtime = (await Deno.stat(tokensFile).catch(() => null))?.mtime?.getTime() ?? 0;
          if (mtime !== tokensMtime || !tokens[jti]) {
            tokensMtime = mtime;
            tokens = await readTokens(o.home);
          }
          const rec = tokens[jti];
          if (!rec) throw new EnrollError(401, "unknown_token", "token not issued here");
          if (rec.revoked) throw new EnrollError(401, "revoked", "token revoked");
          if (await accountRevoked(o.home, claims.customer)) {
            throw new EnrollError(
              403,
              "account_revoked",
              `account "${claims.customer}" is revoked`,
            );
          }
          if (rec.uses >= rec.max_nodes) {
            throw new EnrollError(
              403,
              "overused",
              `token already used by ${rec.uses} of ${rec.max_nodes} node(s)`,
            );
          }
          let settings: Record<string, unknown> = {};
          if (o.webhook) {
            const r = await fetch(o.webhook, {
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
            const d = await r.json().catch(() => ({})) as {
              allow?: boolean;
              settings?: Record<string, unknown>;
            };
            if (!r.ok || d.allow !== true) {
              throw new EnrollError(
                403,
                "denied",
                "the vendor's webhook denied this node",
              );
            }
            settings = d.settings ?? {};
          }
          const userJwt = await mint(claims.customer, claims.site, body.node, body.public_key);
          // use counts: read-check-write under the lock (concurrent enrolments cannot overuse)
          // the use is counted in memory at once (concurrent enrolments cannot overuse)
          // and journaled (append-only) before the node gets its credentials
          const r = tokens[jti]!;
          if (r.uses >= r.max_nodes) {
            throw new EnrollError(
              403,
              "overused",
              `token already used by ${r.uses} of ${r.max_nodes} node(s)`,
            );
          }
          r.uses++;
          r.nodes[body.node as string] = body.public_key as string;
          await locked(() =>
            Deno.writeTextFile(
              join(o.home, "token-uses.log"),
              JSON.stringify({
                jti,
                node: body.node,
                user: body.public_key,
                time: new Date().toISOString(),
              }) + "\n",
              { append: true, mode: 0o600 },
            )
          );
          await audit(o.home, {
            event: "enroll",
            decision: "allow",
            jti,
            customer: claims.customer,
            site: claims.site,
            node: body.node,
            user: body.public_key,
          });
          return json(200, {
            user_jwt: userJwt,
            config: {
              customer: claims.customer,
              site: claims.site,
              node: body.node,
              nats: { servers: o.servers ?? [h.server] },
              trust: { spec_keys: h.spec_keys },
              ...(h.s3 ? { s3: h.s3 } : {}),
              role: claims.role,
              provisioner: { url: claims.provisioner },
              ...settings,
            },
          });
        }
        if (req.method === "POST" && url.pathname === "/v1/renew") {
          const body = await req.json().catch(() => null) as Record<string, unknown> | null;
          if (!body || typeof body.user_jwt !== "string" || typeof body.signature !== "string") {
            throw new EnrollError(400, "bad_request", "need {user_jwt, nonce, signature}");
          }
          const claims = JSON.parse(
            dec.decode(b64urlDecode(body.user_jwt.split(".")[1] ?? "")),
          ) as {
            sub: string;
            name: string;
            nats: { issuer_account: string };
          };
          if (!takeNonce(body.nonce)) {
            throw new EnrollError(
              401,
              "bad_nonce",
              "nonce unknown or expired",
            );
          }
          if (!(await proveKey(claims.sub, body.nonce as string, body.signature))) {
            throw new EnrollError(401, "bad_proof", "signature over the nonce does not verify");
          }
          const accounts = await listAccounts(o.home);
          const acct = accounts.find((a) => a.account === claims.nats.issuer_account);
          if (!acct) throw new EnrollError(401, "unknown_account", "account unknown");
          const revs = JSON.parse(
            await Deno.readTextFile(join(o.home, "accounts", acct.customer, "revocations.json")),
          );
          if (revs["*"]) {
            throw new EnrollError(403, "account_revoked", `account "${acct.customer}" is revoked`);
          }
          if (revs[claims.sub]) {
            throw new EnrollError(
              401,
              "revoked",
              "node revoked: enrol again with a new token",
            );
          }
          const [site, node] = claims.name.split(".");
          const userJwt = await mint(acct.customer, site!, node!, claims.sub);
          await audit(o.home, {
            event: "renew",
            decision: "allow",
            customer: acct.customer,
            node: claims.name,
            user: claims.sub,
          });
          return json(200, { user_jwt: userJwt });
        }
        return json(404, { error: { code: "not_found", message: "no such endpoint" } });
      } catch (err) {
        const e = err instanceof EnrollError
          ? err
          : new EnrollError(500, "internal", (err as Error).message);
        await audit(o.home, {
          event: url.pathname,
          decision: "deny",
          code: e.code,
          reason: e.message,
          ip,
        });
        return json(e.status, { error: { code: e.code, message: e.message } });
      }
    },
  );
}

/**
 * The customer and every user key ever enrolled as `<site>.<node>` (from the token
 * records): a node that re-enrolled has more than one, and revoking the name revokes all.
 * Two customers may use the same site and node names; then `customer` must say which.
 */
export async function findNode(
  home: string,
  site: string,
  node: string,
  customer?: string,
): Promise<{ customer: string; user: string; users: string[] } | null> {
  const tokens = await readTokens(home);
  const byCustomer = new Map<string, string[]>();
  for (const t of Object.values(tokens)) {
    if (t.site !== site || !t.nodes[node]) continue;
    if (customer && t.customer !== customer) continue;
    const list = byCustomer.get(t.customer) ?? [];
    if (!list.includes(t.nodes[node]!)) list.push(t.nodes[node]!);
    byCustomer.set(t.customer, list);
  }
  if (byCustomer.size === 0) return null;
  if (byCustomer.size > 1) {
    throw new Error(
      `${site}.${node} is enrolled in more than one customer (${
        [...byCustomer.keys()].join(", ")
      }): say which with --customer`,
    );
  }
  const [c, users] = [...byCustomer][0]!;
  return { customer: c, user: users[users.length - 1]!, users };
}
