/**
 * The vendor side of provisioning: operator-mode NATS (operator, system account, one
 * account per customer with JetStream), provisioning tokens (tokens.ts), the enrolment
 * service (service.ts), node revocation and the hash-chained audit log (audit.ts). Everything lives under the vendor home dir
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
import { createAccount, createOperator, createUser } from "@nats-io/nkeys";
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { join } from "node:path";
import { audit } from "./audit.ts";
import { type HomeConfig, readHome, readSeed, writeHome, writeSecret } from "./home.ts";
import {
  type BackendDeps,
  backendExists,
  type BackendInfo,
  CUSTOMER_EXPORTS,
  initBackend,
  linkBackend,
  UNLIMITED_JETSTREAM_ACCOUNT,
} from "./backend.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

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
  await writeHome(home, cfg);
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

export async function pushAccount(home: string, jwt: string, server?: string): Promise<void> {
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
    limits: UNLIMITED_JETSTREAM_ACCOUNT,
    signing_keys: [signer.getPublicKey()],
    revocations,
    exports: CUSTOMER_EXPORTS,
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
  if (await backendExists(home)) await linkBackend(home, backendDeps, o);
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

async function readRevocations(home: string, customer: string): Promise<Record<string, number>> {
  const dir = join(home, "accounts", customer);
  try {
    return JSON.parse(await Deno.readTextFile(join(dir, "revocations.json")));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      await Deno.stat(join(dir, "account.nk")).catch(() => {
        throw new Error(`no account "${customer}" in ${home}`);
      });
      return {};
    }
    throw err;
  }
}

/** Re-signs a customer's account JWT from its files (current revocations) and pushes it. */
export async function repushCustomer(
  home: string,
  customer: string,
  server?: string,
): Promise<void> {
  const dir = join(home, "accounts", customer);
  const jwt = await accountJwt(home, customer, await readRevocations(home, customer));
  await Deno.writeTextFile(join(dir, "account.jwt"), jwt);
  await pushAccount(home, jwt, server);
}

/**
 * `account revoke`: revokes every user of a customer's account (nodes and admin) — the
 * server drops their connections and refuses them — and the provisioner refuses further
 * enrolments and renewals for it. Keys and streams are kept (for the record).
 */
export async function revokeAccount(
  home: string,
  customer: string,
  o: { server?: string } = {},
): Promise<void> {
  if (!ID.test(customer)) throw new TypeError(`customer must match ${ID.source}`);
  const dir = join(home, "accounts", customer);
  const revs = await readRevocations(home, customer);
  revs["*"] = Math.floor(Date.now() / 1000) + 1;
  await Deno.writeTextFile(join(dir, "revocations.json"), JSON.stringify(revs));
  await repushCustomer(home, customer, o.server);
  await audit(home, { event: "account.revoke", customer });
}

/** Whether `account revoke` was run for a customer. */
export async function accountRevoked(home: string, customer: string): Promise<boolean> {
  return "*" in await readRevocations(home, customer).catch(() => ({}));
}

const backendDeps: BackendDeps = {
  readSeed,
  writeSecret,
  listAccounts,
  pushAccount,
  repushCustomer,
};

/** `backend init` (see backend.ts): the vendor backend's view of every customer's events. */
export function setupBackend(
  home: string,
  o: { server?: string; maxAge?: string; maxBytes?: number } = {},
): Promise<BackendInfo> {
  return readHome(home).then((h) =>
    initBackend(home, backendDeps, { ...o, server: o.server ?? h.server })
  );
}

/** `backend link`: re-links every customer account into the backend account. */
export function relinkBackend(home: string, o: { server?: string } = {}): Promise<BackendInfo> {
  return linkBackend(home, backendDeps, o);
}

/**
 * Revokes node user keys in their customer's account (pushed: the server drops them and
 * refuses every JWT issued to them up to now; a later enrolment has a new key).
 */
export async function revokeUser(
  home: string,
  customer: string,
  userKey: string | string[],
  o: { server?: string } = {},
): Promise<void> {
  const dir = join(home, "accounts", customer);
  const revs = await readRevocations(home, customer);
  const keys = Array.isArray(userKey) ? userKey : [userKey];
  const at = Math.floor(Date.now() / 1000) + 1;
  for (const k of keys) revs[k] = at;
  await Deno.writeTextFile(join(dir, "revocations.json"), JSON.stringify(revs));
  const jwt = await accountJwt(home, customer, revs);
  await Deno.writeTextFile(join(dir, "account.jwt"), jwt);
  await pushAccount(home, jwt, o.server);
  for (const k of keys) await audit(home, { event: "node.revoke", customer, user: k });
}
