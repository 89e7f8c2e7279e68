/**
 * The governor mediator for every customer account of a vendor home (`mr-saas serve` runs
 * it): one connection per account with the account's admin creds, each answering its nodes'
 * governor requests (src/governor/mediator.ts). New accounts are picked up on a timer.
 *
 * @module
 */
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { join } from "node:path";
import { type GovernorMediator, startGovernorMediator } from "../src/governor/mod.ts";
import { accountRevoked, listAccounts } from "./operator.ts";
import { readHome } from "./home.ts";
import { openRecords } from "./records.ts";

/** Options of {@linkcode serveMediators}. */
export interface ServeMediatorsOptions {
  /** NATS URL(s). @default {the home's server} */
  servers?: string[];
  /** How often to look for new accounts. @default {30000} */
  rescanMs?: number;
  /** Called on a failure to start one account's mediator (it is tried again next scan). */
  onError?: (customer: string, err: unknown) => void;
}

/** Runs mediators for the home's accounts until `stop()`. */
export async function serveMediators(
  home: string,
  o: ServeMediatorsOptions = {},
): Promise<{ customers(): string[]; stop(): Promise<void> }> {
  const h = await readHome(home);
  const running = new Map<string, { nc: NatsConnection; m: GovernorMediator }>();
  let stopped = false;
  const scan = async () => {
    const pending = (await listAccounts(home)).filter((a) => !running.has(a.customer));
    if (pending.length === 0) return;
    // revocations live in the vendor records (records.ts): one connection per scan
    await using records = await openRecords(home, o.servers?.[0] ?? h.server);
    for (const { customer } of pending) {
      if (stopped || running.has(customer) || await accountRevoked(home, customer, { records })) {
        continue;
      }
      try {
        const creds = await Deno.readFile(join(home, "accounts", customer, "admin.creds"));
        const nc = await connect({
          servers: o.servers ?? [h.server],
          name: `mr-saas governor mediator ${customer}`,
          authenticator: credsAuthenticator(creds),
          maxReconnectAttempts: -1,
        });
        running.set(customer, { nc, m: await startGovernorMediator(nc) });
      } catch (err) {
        o.onError?.(customer, err);
      }
    }
  };
  await scan();
  const timer = setInterval(() => scan().catch(() => {}), o.rescanMs ?? 30_000);
  return {
    customers: () => [...running.keys()],
    async stop() {
      stopped = true;
      clearInterval(timer);
      for (const { nc, m } of running.values()) {
        await m.stop().catch(() => {});
        await nc.close().catch(() => {});
      }
      running.clear();
    },
  };
}
