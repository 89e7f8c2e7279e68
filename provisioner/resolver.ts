/**
 * Pushing account JWTs to the server's full resolver with the system account's user
 * (`sys.creds` in the vendor home).
 *
 * @module
 */
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { join } from "node:path";
import { readHome } from "./home.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A system-account connection (`sys.creds`) to `server` or the home's server. */
export async function sysConnect(home: string, server?: string): Promise<NatsConnection> {
  const h = await readHome(home);
  return await connect({
    servers: server ?? h.server,
    authenticator: credsAuthenticator(await Deno.readFile(join(home, "sys.creds"))),
    timeout: 5000,
  });
}

/** Pushes an account JWT to the resolver (`$SYS.REQ.CLAIMS.UPDATE`); throws when refused. */
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
