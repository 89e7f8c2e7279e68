/**
 * The vendor side of provisioning: operator-mode NATS (operator, system account, one
 * account per customer with JetStream), provisioning tokens, the enrolment service, node
 * revocation and the hash-chained audit log. Everything lives under the vendor home dir
 * (`--home D`); key files are 0600.
 *
 * Layout of the home dir:
 * - `mr-saas.json`: operator/system/provisioner public keys, server URL, spec trust keys
 * - `keys/*.nk`: seeds (operator, system account, provisioner token key), 0600
 * - `sys.creds`: system-account user (pushes account JWTs to the resolver), 0600
 * - `accounts/<customer>/{account.nk, signer.nk, account.jwt, admin.creds}`
 * - `tokens.json`: issued tokens and their use counts
 * - `audit.log`: one JSON record per decision, each carrying the previous record's hash
 * - `nats-server.conf`, `resolver/`, `jetstream/`
 *
 * @module
 */
import { createAccount, createOperator, createUser, fromSeed, type KeyPair } from "@nats-io/nkeys";
import { encodeAccount, encodeGeneric, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { createHash } from "node:crypto";
import { encodeUserJwt, nkeySigner, nkeyVerify } from "../src/util/ed25519.ts";
import { join } from "node:path";

const enc = new TextEncoder();
const dec = new TextDecoder();
const ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** `mr-saas.json`. */
export interface HomeConfig {
  operator: string;
  system_account: string;
  provisioner_key: string;
  server: string;
  spec_keys: string[];
  s3?: Record<string, unknown>;
}

async function writeSecret(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  if (typeof data === "string") await Deno.writeTextFile(tmp, data, { mode: 0o600 });
  else await Deno.writeFile(tmp, data, { mode: 0o600 });
  await Deno.chmod(tmp, 0o600);
  await Deno.rename(tmp, path);
}

async function readSeed(path: string): Promise<KeyPair> {
  return fromSeed(enc.encode((await Deno.readTextFile(path)).trim()));
}

/** Reads `mr-saas.json` of a home dir. */
export async function readHome(home: string): Promise<HomeConfig> {
  try {
    return JSON.parse(await Deno.readTextFile(join(home, "mr-saas.json")));
  } catch (err) {
    throw new Error(
      `${home} is not a vendor home (run \`mr-saas operator init --home ${home}\`): ${
        (err as Error).message
      }`,
    );
  }
}

/** `operator init`: keys, system account, server config. Refuses an existing home. */
export async function initOperator(
  home: string,
  o: { natsPort?: number; host?: string; name?: string } = {},
): Promise<HomeConfig> {
  try {
    await Deno.stat(join(home, "mr-saas.json"));
    throw new Error(`${home} already holds an operator; refusing to overwrite it`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  for (const d of ["keys", "accounts", "resolver", "jetstream"]) {
    await Deno.mkdir(join(home, d), { recursive: true, mode: 0o700 });
  }
  const op = createOperator();
  const sys = createAccount();
  const prov = createAccount();
  const sysUser = createUser();
  const opJwt = await encodeOperator(o.name ?? "machine-room", op, {
    system_account: sys.getPublicKey(),
  });
  const sysJwt = await encodeAccount("SYS", sys, {
    limits: {
      conn: -1,
      subs: -1,
      data: -1,
      payload: -1,
      imports: -1,
      exports: -1,
      wildcards: true,
      leaf: -1,
    },
  }, { signer: op });
  const sysUserJwt = await encodeUser("sys", sysUser, sys);
  await writeSecret(join(home, "keys", "operator.nk"), dec.decode(op.getSeed()));
  await writeSecret(join(home, "keys", "system.nk"), dec.decode(sys.getSeed()));
  await writeSecret(join(home, "keys", "provisioner.nk"), dec.decode(prov.getSeed()));
  await writeSecret(join(home, "sys.creds"), fmtCreds(sysUserJwt, sysUser));
  const port = o.natsPort ?? 4222;
  const host = o.host ?? "127.0.0.1";
  const conf = [
    `listen: "${host}:${port}"`,
    `operator: ${opJwt}`,
    `system_account: ${sys.getPublicKey()}`,
    `resolver: { type: full, dir: "${
      join(home, "resolver")
    }", allow_delete: true, interval: "2m" }`,
    `resolver_preload: { ${sys.getPublicKey()}: ${sysJwt} }`,
    `jetstream { store_dir: "${join(home, "jetstream")}" }`,
  ].join("\n") + "\n";
  await Deno.writeTextFile(join(home, "nats-server.conf"), conf, { mode: 0o600 });
  const cfg: HomeConfig = {
    operator: op.getPublicKey(),
    system_account: sys.getPublicKey(),
    provisioner_key: prov.getPublicKey(),
    server: `nats://${host}:${port}`,
    spec_keys: [],
  };
  await Deno.writeTextFile(join(home, "mr-saas.json"), JSON.stringify(cfg, null, 2) + "\n");
  await audit(home, { event: "operator.init", operator: cfg.operator });
  return cfg;
}

/** Just the operator-mode lines of the server config (for tests that add their own listen/jetstream). */
export async function operatorConfigLines(home: string): Promise<string> {
  const conf = await Deno.readTextFile(join(home, "nats-server.conf"));
  return conf.split("\n").filter((l) =>
    /^(operator|system_account|resolver|resolver_preload):/.test(l)
  )
    .join("\n");
}

async function sysConnect(home: string, server?: string): Promise<NatsConnection> {
  const h = await readHome(home);
  return await connect({
    servers: server ?? h.server,
    authenticator: credsAuthenticator(await Deno.readFile(join(home, "sys.creds"))),
    timeout: 5000,
  });
}

async function pushAccount(home: string, jwt: string, server?: string): Promise<void> {
  const nc = await sysConnect(home, server);
  try {
    const r = await nc.request("$SYS.REQ.CLAIMS.UPDATE", enc.encode(jwt), { timeout: 5000 });
    const body = JSON.parse(dec.decode(r.data)) as { error?: { description?: string } };
    if (body.error) throw new Error(`resolver refused the account: ${body.error.description}`);
  } finally {
    await nc.close();
  }
}

/** Account claims of a customer (JetStream enabled, one signing key, revocations). */
async function accountJwt(
  home: string,
  customer: string,
  revocations: Record<string, number>,
): Promise<string> {
  const dir = join(home, "accounts", customer);
  const acct = await readSeed(join(dir, "account.nk"));
  const signer = await readSeed(join(dir, "signer.nk"));
  const op = await readSeed(join(home, "keys", "operator.nk"));
  return await encodeAccount(customer, acct, {
    limits: {
      mem_storage: -1,
      disk_storage: -1,
      streams: -1,
      consumer: -1,
      conn: -1,
      subs: -1,
      data: -1,
      payload: -1,
      imports: -1,
      exports: -1,
      wildcards: true,
      leaf: -1,
    },
    signing_keys: [signer.getPublicKey()],
    revocations,
  }, { signer: op });
}

/** `account add`: a NATS account for a customer, pushed to the running server. */
export async function addAccount(
  home: string,
  customer: string,
  o: { server?: string } = {},
): Promise<{ account: string; adminCreds: string }> {
  if (!ID.test(customer)) throw new TypeError(`customer must match ${ID.source}`);
  const dir = join(home, "accounts", customer);
  try {
    await Deno.stat(dir);
    throw new Error(`account "${customer}" exists`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const acct = createAccount();
  const signer = createAccount();
  await writeSecret(join(dir, "account.nk"), dec.decode(acct.getSeed()));
  await writeSecret(join(dir, "signer.nk"), dec.decode(signer.getSeed()));
  const jwt = await accountJwt(home, customer, {});
  await Deno.writeTextFile(join(dir, "account.jwt"), jwt);
  await Deno.writeTextFile(join(dir, "revocations.json"), "{}");
  // an admin user for the vendor's own tooling in this account (mr-saas --creds)
  const admin = createUser();
  const adminJwt = await encodeUser(`${customer}-admin`, admin, signer, {
    issuer_account: acct.getPublicKey(),
  });
  const adminCreds = join(dir, "admin.creds");
  await writeSecret(adminCreds, fmtCreds(adminJwt, admin));
  await pushAccount(home, jwt, o.server);
  await audit(home, { event: "account.add", customer, account: acct.getPublicKey() });
  return { account: acct.getPublicKey(), adminCreds };
}

/** Customers with their account keys. */
export async function listAccounts(home: string): Promise<{ customer: string; account: string }[]> {
  const out = [];
  for await (const e of Deno.readDir(join(home, "accounts"))) {
    if (!e.isDirectory) continue;
    const kp = await readSeed(join(home, "accounts", e.name, "account.nk"));
    out.push({ customer: e.name, account: kp.getPublicKey() });
  }
  return out.sort((a, b) => a.customer.localeCompare(b.customer));
}

/** Revokes a node's user key in its customer's account (pushed: the server drops it). */
export async function revokeUser(
  home: string,
  customer: string,
  userKey: string,
  o: { server?: string } = {},
): Promise<void> {
  const dir = join(home, "accounts", customer);
  const revs = JSON.parse(await Deno.readTextFile(join(dir, "revocations.json"))) as Record<
    string,
    number
  >;
  revs[userKey] = Math.floor(Date.now() / 1000) + 1;
  await Deno.writeTextFile(join(dir, "revocations.json"), JSON.stringify(revs));
  const jwt = await accountJwt(home, customer, revs);
  await Deno.writeTextFile(join(dir, "account.jwt"), jwt);
  await pushAccount(home, jwt, o.server);
  await audit(home, { event: "node.revoke", customer, user: userKey });
}

// ---- tokens ---------------------------------------------------------------------------

/** Provisioning token claims (`nats` section of a generic JWT). */
export interface TokenClaims {
  customer: string;
  site: string;
  provisioner: string;
  max_nodes: number;
  role: "auto" | "leader" | "follower";
  ext: Record<string, unknown>;
}

interface TokenRecord {
  customer: string;
  site: string;
  exp: number;
  max_nodes: number;
  uses: number;
  revoked: boolean;
  nodes: Record<string, string>;
}

/** Issued tokens (`tokens.json`) with the uses journal (`token-uses.log`) applied. */
async function readTokens(home: string): Promise<Record<string, TokenRecord>> {
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

function b64urlDecode(s: string): Uint8Array {
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

/** A refused enrolment (HTTP status, code, message). */
export class EnrollError extends Error {
  override name = "EnrollError";
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

// ---- audit log -----------------------------------------------------------------------

let auditTail: Promise<void> = Promise.resolve();
const lastHash = new Map<string, string>();

/** Appends a hash-chained audit record (`prev` = previous record's hash). */
export function audit(home: string, record: Record<string, unknown>): Promise<void> {
  const path = join(home, "audit.log");
  auditTail = auditTail.then(async () => {
    let prev = lastHash.get(path);
    if (prev === undefined) {
      prev = "0".repeat(64);
      try {
        const lines = (await Deno.readTextFile(path)).trim().split("\n").filter(Boolean);
        if (lines.length) prev = JSON.parse(lines.at(-1)!).hash;
      } catch { /* new log */ }
    }
    const body = { time: new Date().toISOString(), ...record, prev };
    const hash = createHash("sha256").update(JSON.stringify(body)).digest("hex");
    await Deno.writeTextFile(path, JSON.stringify({ ...body, hash }) + "\n", {
      append: true,
      mode: 0o600,
    });
    lastHash.set(path, hash);
  });
  return auditTail;
}

/** Verifies the chain; returns the 1-based line of the first bad record, or 0. */
export async function verifyAudit(
  home: string,
): Promise<{ records: number; badLine: number; reason?: string }> {
  const lines = (await Deno.readTextFile(join(home, "audit.log"))).split("\n").filter(Boolean);
  let prev = "0".repeat(64);
  for (let i = 0; i < lines.length; i++) {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(lines[i]!);
    } catch {
      return { records: lines.length, badLine: i + 1, reason: "not JSON" };
    }
    const { hash, ...body } = rec;
    if (body.prev !== prev) {
      return { records: lines.length, badLine: i + 1, reason: "chain broken (prev hash)" };
    }
    const actual = createHash("sha256").update(JSON.stringify(body)).digest("hex");
    if (actual !== hash) {
      return { records: lines.length, badLine: i + 1, reason: "record edited (hash mismatch)" };
    }
    prev = hash as string;
  }
  return { records: lines.length, badLine: 0 };
}

// ---- node permissions and the enrolment service ---------------------------------------

/** The publish/subscribe permissions of a node's user (only its own subjects). */
export function nodePermissions(site: string, node: string) {
  const kvRead = (b: string) => [
    `$JS.API.STREAM.INFO.KV_${b}`,
    `$JS.API.CONSUMER.CREATE.KV_${b}`,
    `$JS.API.CONSUMER.CREATE.KV_${b}.>`,
    `$JS.API.CONSUMER.DELETE.KV_${b}.>`,
    `$JS.API.CONSUMER.INFO.KV_${b}.>`,
    `$JS.API.DIRECT.GET.KV_${b}.>`,
    `$JS.API.STREAM.MSG.GET.KV_${b}`,
    `$JS.FC.KV_${b}.>`,
  ];
  return {
    pub: {
      allow: [
        `mr.${site}.${node}.>`,
        "$JS.API.INFO",
        ...kvRead("MR_DESIRED"),
        ...kvRead("MR_ELECTION"),
        ...kvRead("MR_SHARED"),
        `$KV.MR_ELECTION.site.${site}`,
        "mr.gov.>",
        "$JS.API.STREAM.CREATE.MR_GOV_*",
        "$JS.API.STREAM.UPDATE.MR_GOV_*",
        "$JS.API.STREAM.INFO.MR_GOV_*",
        "$JS.API.STREAM.MSG.DELETE.MR_GOV_*",
        "$JS.API.DIRECT.GET.MR_GOV_*",
        "$JS.API.DIRECT.GET.MR_GOV_*.>",
      ],
      deny: ["$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$KV.MR_DESIRED.>"],
    },
    sub: { allow: [`_INBOX.${site}.${node}.>`, `mr.${site}.${node}.cmd.>`] },
    resp: { max: 1, ttl: 0 },
  };
}

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
          let rec = tokens[jti];
          if (!rec) {
            tokens = await readTokens(o.home); // issued after the service started
            rec = tokens[jti];
          }
          if (!rec) throw new EnrollError(401, "unknown_token", "token not issued here");
          if (rec.revoked) throw new EnrollError(401, "revoked", "token revoked");
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

/** The customer owning a node user key (from token records). */
export async function findNode(
  home: string,
  site: string,
  node: string,
): Promise<{ customer: string; user: string } | null> {
  const tokens = await readTokens(home);
  for (const t of Object.values(tokens)) {
    if (t.site === site && t.nodes[node]) return { customer: t.customer, user: t.nodes[node]! };
  }
  return null;
}
