/**
 * The vendor side of provisioning: operator-mode NATS (operator, system account, one
 * account per customer with JetStream) and revocation of nodes and accounts. Tokens,
 * node records and revocations live in NATS KV in the vendor account (records.ts); only
 * keys stay in files under the vendor home dir (`--home D`), all 0600.
 *
 * Layout of the home dir:
 * - `mr-saas.json`: operator/system/provisioner/vendor public keys, server URL, spec keys
 * - `keys/*.nk`: seeds (operator, system account, provisioner token key, vendor account
 *   and its user), `keys/audit.key` (audit and nonce MAC key), 0600
 * - `sys.creds`: system-account user (pushes account JWTs to the resolver), 0600
 * - `accounts/<customer>/{account.nk, signer.nk, account.jwt, admin.creds}`
 * - `audit.log` (+ `audit.lock`): one MAC-chained JSON record per decision (audit.ts)
 * - `nats-server.conf`, `resolver/`, `jetstream/`
 *
 * @module
 */
import { createAccount, createOperator, createUser } from "@nats-io/nkeys";
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { join } from "node:path";
import { audit, auditKey } from "./audit.ts";
import { pushAccount } from "./resolver.ts";
import { type NodeRecord, type Records, type RecordsOption, withRecords } from "./records.ts";
import { vendorKeys } from "./vendor.ts";
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
  const vendor = await vendorKeys(home);
  await auditKey(home);
  await writeHome(home, { ...cfg, vendor_account: vendor.account.getPublicKey() });
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

/** A customer's revoked user keys (`*`: the whole account) from the records. */
export async function readRevocations(
  home: string,
  customer: string,
  r: Records,
): Promise<Record<string, number>> {
  await Deno.stat(join(home, "accounts", customer, "account.nk")).catch((err) => {
    throw new Error(`no account "${customer}" in ${home}`, { cause: err });
  });
  return (await r.get<Record<string, number>>("revocations", customer)) ?? {};
}

/**
 * Re-signs a customer's account JWT with the current revocations and pushes it; pushes
 * again while another process changed the revocations meanwhile, so the resolver ends with
 * the latest whatever the order of concurrent pushes.
 */
async function pushCustomer(home: string, customer: string, r: Records, server?: string) {
  const dir = join(home, "accounts", customer);
  for (let i = 0; i < 20; i++) {
    const revs = await readRevocations(home, customer, r);
    const jwt = await accountJwt(home, customer, revs);
    await Deno.writeTextFile(join(dir, "account.jwt"), jwt);
    await pushAccount(home, jwt, server);
    const after = await readRevocations(home, customer, r);
    if (JSON.stringify(after) === JSON.stringify(revs)) return;
  }
  throw new Error(`revocations of "${customer}" keep changing; run the command again`);
}

/** Re-signs a customer's account JWT (current revocations) and pushes it. */
export function repushCustomer(home: string, customer: string, server?: string): Promise<void> {
  return withRecords(
    home,
    server ? { server } : {},
    (r) => pushCustomer(home, customer, r, server),
  );
}

/**
 * `account revoke`: revokes every user of a customer's account (nodes and admin) — the
 * server drops their connections and refuses them — and the provisioner refuses further
 * enrolments and renewals for it. Keys and streams are kept (for the record).
 */
export async function revokeAccount(
  home: string,
  customer: string,
  o: RecordsOption = {},
): Promise<void> {
  if (!ID.test(customer)) throw new TypeError(`customer must match ${ID.source}`);
  await withRecords(home, o, async (r) => {
    await readRevocations(home, customer, r);
    await r.update<Record<string, number>>("revocations", customer, (cur) => ({
      ...cur,
      "*": Math.floor(Date.now() / 1000) + 1,
    }));
    await pushCustomer(home, customer, r, o.server);
    await audit(home, { event: "account.revoke", customer }, { anchor: r });
  });
}

/** Whether `account revoke` was run for a customer. */
export async function accountRevoked(
  home: string,
  customer: string,
  o: RecordsOption = {},
): Promise<boolean> {
  return await withRecords(home, o, async (r) => "*" in await readRevocations(home, customer, r));
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
 * refuses every JWT issued to them up to now) and marks the node names they belong to
 * revoked, so the names may enrol again under a new key and the old keys never renew.
 */
export async function revokeUser(
  home: string,
  customer: string,
  userKey: string | string[],
  o: RecordsOption = {},
): Promise<void> {
  const keys = Array.isArray(userKey) ? userKey : [userKey];
  await withRecords(home, o, async (r) => {
    await readRevocations(home, customer, r);
    const at = Math.floor(Date.now() / 1000) + 1;
    await r.update<Record<string, number>>("revocations", customer, (cur) => {
      const next = { ...cur };
      for (const k of keys) next[k] = at;
      return next;
    });
    for (const name of await r.keys("nodes", `${customer}.>`)) {
      const n = await r.get<NodeRecord>("nodes", name);
      if (!n || n.revoked || !n.keys.some((k) => keys.includes(k.user))) continue;
      await r.update<NodeRecord>("nodes", name, (cur) => ({ ...cur!, revoked: true }));
    }
    await pushCustomer(home, customer, r, o.server);
    for (const k of keys) {
      await audit(home, { event: "node.revoke", customer, user: k }, { anchor: r });
    }
  });
}
