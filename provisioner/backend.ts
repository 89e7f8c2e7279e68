/**
 * The backend view: one NATS account for the vendor's SaaS backend that sees every
 * customer's events in one place, so the backend needs no Machine Room code — it reads a
 * plain JetStream stream.
 *
 * How it is wired (all in signed account JWTs, pushed to the running server):
 * - every customer account exports the stream `mr.*.*.ev.>` with `token_req` (no account
 *   can import it without an activation token signed by that customer's account key);
 * - the backend account imports each customer's export with an activation token and the
 *   prefix `cust.<customer>`, so `mr.site1.n1.ev.lifecycle` in account `acme` appears in the
 *   backend account as `cust.acme.mr.site1.n1.ev.lifecycle`;
 * - the backend stream `MR_EVENTS_ALL` (subjects `cust.*.mr.*.*.ev.>`, file storage) keeps
 *   them. Each customer's own `MR_EVENTS` stays the per-tenant record.
 *
 * Customers added after `backend init` are linked by `account add`; `backend link`
 * re-links every customer (e.g. after restoring a home dir).
 *
 * Home dir layout: `backend/{account.nk, account.jwt, reader.creds}` (seeds and creds 0600).
 *
 * @module
 */
import { createAccount, createUser, type KeyPair } from "@nats-io/nkeys";
import { encodeAccount, encodeActivation, encodeUser, fmtCreds } from "@nats-io/jwt";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { join } from "node:path";
import { audit } from "./audit.ts";
import { isStreamNotFound } from "../src/nats/errors.ts";
import { parseDuration } from "../src/util/duration.ts";

const dec = new TextDecoder();

/** The subject every customer account exports to the backend (its events). */
export const BACKEND_EXPORT_SUBJECT = "mr.*.*.ev.>";
/** The backend stream. */
export const BACKEND_STREAM = "MR_EVENTS_ALL";
/** Subjects of the backend stream: `cust.<customer>.mr.<site>.<node>.ev.<category>`. */
export const BACKEND_STREAM_SUBJECTS = ["cust.*.mr.*.*.ev.>"];

/** Account limits of customer and backend accounts: JetStream enabled, nothing capped. */
export const UNLIMITED_JETSTREAM_ACCOUNT = {
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
};

/** The export every customer account carries (only usable with an activation token). */
export const CUSTOMER_EXPORTS = [{
  name: "mr-events",
  subject: BACKEND_EXPORT_SUBJECT,
  type: "stream" as const,
  token_req: true,
  description: "node events for the vendor backend (activation required)",
}];

/** Dependencies the backend needs from operator.ts (kept as parameters to avoid a cycle). */
export interface BackendDeps {
  readSeed(path: string): Promise<KeyPair>;
  writeSecret(path: string, data: string | Uint8Array): Promise<void>;
  listAccounts(home: string): Promise<{ customer: string; account: string }[]>;
  pushAccount(home: string, jwt: string, server?: string): Promise<void>;
  /** Re-signs and pushes a customer account (so it carries {@linkcode CUSTOMER_EXPORTS}). */
  repushCustomer(home: string, customer: string, server?: string): Promise<void>;
}

/** Whether `backend init` has run in this home. */
export async function backendExists(home: string): Promise<boolean> {
  try {
    await Deno.stat(join(home, "backend", "account.nk"));
    return true;
  } catch {
    return false;
  }
}

/** Result of {@linkcode initBackend} / {@linkcode linkBackend}. */
export interface BackendInfo {
  account: string;
  reader_creds: string;
  stream: string;
  subjects: string[];
  customers: string[];
}

/**
 * Signs the backend account with one import per customer and pushes it. Returns the
 * linked customers.
 */
export async function linkBackend(
  home: string,
  deps: BackendDeps,
  o: { server?: string } = {},
): Promise<BackendInfo> {
  const dir = join(home, "backend");
  const acct = await deps.readSeed(join(dir, "account.nk"));
  const op = await deps.readSeed(join(home, "keys", "operator.nk"));
  const customers = await deps.listAccounts(home);
  const imports = [];
  for (const c of customers) {
    const ckp = await deps.readSeed(join(home, "accounts", c.customer, "account.nk"));
    const token = await encodeActivation(
      `mr-events-${c.customer}`,
      acct,
      ckp,
      "stream",
      { subject: BACKEND_EXPORT_SUBJECT },
    );
    imports.push({
      name: `events-${c.customer}`,
      type: "stream" as const,
      account: c.account,
      subject: BACKEND_EXPORT_SUBJECT,
      to: `cust.${c.customer}`,
      token,
    });
  }
  const jwt = await encodeAccount("backend", acct, {
    limits: UNLIMITED_JETSTREAM_ACCOUNT,
    imports,
  }, { signer: op });
  await Deno.writeTextFile(join(dir, "account.jwt"), jwt);
  await deps.pushAccount(home, jwt, o.server);
  return {
    account: acct.getPublicKey(),
    reader_creds: join(dir, "reader.creds"),
    stream: BACKEND_STREAM,
    subjects: BACKEND_STREAM_SUBJECTS,
    customers: customers.map((c) => c.customer),
  };
}

/** Connects to the server as the backend's reader user. */
export async function backendConnect(home: string, server: string): Promise<NatsConnection> {
  return await connect({
    servers: server,
    authenticator: credsAuthenticator(await Deno.readFile(join(home, "backend", "reader.creds"))),
    timeout: 5000,
  });
}

/**
 * `backend init`: creates the backend account and its reader user, makes every customer
 * account carry the events export, links them all and creates `MR_EVENTS_ALL`.
 * Idempotent: a second run re-links and keeps the existing keys and stream.
 */
export async function initBackend(
  home: string,
  deps: BackendDeps,
  o: { server: string; maxAge?: string; maxBytes?: number },
): Promise<BackendInfo> {
  const dir = join(home, "backend");
  if (!(await backendExists(home))) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const acct = createAccount();
    const reader = createUser();
    await deps.writeSecret(join(dir, "account.nk"), dec.decode(acct.getSeed()));
    const readerJwt = await encodeUser("backend-reader", reader, acct);
    await deps.writeSecret(join(dir, "reader.creds"), fmtCreds(readerJwt, reader));
  }
  for (const c of await deps.listAccounts(home)) {
    await deps.repushCustomer(home, c.customer, o.server);
  }
  const info = await linkBackend(home, deps, o);
  const nc = await backendConnect(home, o.server);
  try {
    const jsm = await jetstreamManager(nc);
    const cfg = {
      name: BACKEND_STREAM,
      subjects: BACKEND_STREAM_SUBJECTS,
      storage: "file" as const,
      max_age: parseDuration(o.maxAge ?? "30d") * 1_000_000,
      max_bytes: o.maxBytes ?? -1,
      duplicate_window: 120_000_000_000,
    };
    try {
      await jsm.streams.info(BACKEND_STREAM);
      await jsm.streams.update(BACKEND_STREAM, cfg);
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
      await jsm.streams.add(cfg);
    }
  } finally {
    await nc.close();
  }
  await audit(home, { event: "backend.init", account: info.account, customers: info.customers });
  return info;
}
