/**
 * The vendor account (`MR_VENDOR`): a JetStream account of the vendor's own, beside the
 * customer accounts, that holds the provisioning records (records.ts). No node and no
 * customer user can reach it: only users signed with its key, which lives in the vendor
 * home (`keys/vendor.nk`, `keys/vendor-user.nk`, 0600).
 *
 * Its JWT is pushed to the resolver whenever a process opens the records, so a home made
 * before the account existed, or a server whose resolver lost it, gets it back.
 *
 * @module
 */
import { createAccount, createUser, fromSeed, type KeyPair } from "@nats-io/nkeys";
import { encodeAccount, encodeUser, fmtCreds } from "@nats-io/jwt";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { join } from "node:path";
import { UNLIMITED_JETSTREAM_ACCOUNT } from "./backend.ts";
import { readHome, readSeed } from "./home.ts";
import { pushAccount } from "./resolver.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads a seed file, creating it exclusively with `make()` when absent (races: one wins). */
async function seedFile(path: string, make: () => KeyPair): Promise<KeyPair> {
  try {
    const f = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    try {
      await f.write(enc.encode(dec.decode(make().getSeed())));
    } finally {
      f.close();
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  // a writer that lost the race may still be writing: wait for a whole seed
  for (let i = 0;; i++) {
    const text = (await Deno.readTextFile(path)).trim();
    if (text.length >= 58 || i > 50) return fromSeed(enc.encode(text));
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The vendor account's key pair and user key pair (created on first use). */
export async function vendorKeys(home: string): Promise<{ account: KeyPair; user: KeyPair }> {
  await Deno.mkdir(join(home, "keys"), { recursive: true, mode: 0o700 });
  const account = await seedFile(join(home, "keys", "vendor.nk"), createAccount);
  const user = await seedFile(join(home, "keys", "vendor-user.nk"), createUser);
  return { account, user };
}

/** The vendor account JWT, signed by the operator. */
export async function vendorAccountJwt(home: string): Promise<string> {
  const { account } = await vendorKeys(home);
  const op = await readSeed(join(home, "keys", "operator.nk"));
  return await encodeAccount("MR_VENDOR", account, {
    limits: UNLIMITED_JETSTREAM_ACCOUNT,
  }, { signer: op });
}

/**
 * Connects to the vendor account (pushing its JWT first). `server` defaults to the home's.
 */
export async function vendorConnect(home: string, server?: string): Promise<NatsConnection> {
  const h = await readHome(home);
  const url = server ?? h.server;
  await pushAccount(home, await vendorAccountJwt(home), url);
  const { account, user } = await vendorKeys(home);
  const jwt = await encodeUser("mr-vendor", user, account);
  return await connect({
    servers: url.split(","),
    name: "mr-saas-vendor",
    timeout: 5000,
    // a long-running `serve` rides out a NATS restart instead of losing its records
    maxReconnectAttempts: -1,
    authenticator: credsAuthenticator(fmtCreds(jwt, user)),
  });
}
