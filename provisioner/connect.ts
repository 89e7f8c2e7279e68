/**
 * NATS connection for `mr-saas` commands from the global `--server` / `--creds` options.
 *
 * @module
 */
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import type { Command } from "commander";
import { UsageError } from "../src/cli/errors.ts";
import { globalOptions } from "./options.ts";

/** Connects using the root program's `--server` and `--creds` (an `await using` handle). */
export async function saasConnect(cmd: Command): Promise<NatsConnection & AsyncDisposable> {
  const opts = globalOptions(cmd);
  if (!opts.server) {
    throw new UsageError(
      "Missing --server (or MR_SAAS_SERVER): the NATS URL of the customer account",
    );
  }
  const nc = await connect({
    servers: opts.server.split(","),
    name: "mr-saas",
    timeout: 5_000,
    ...(opts.creds ? { authenticator: credsAuthenticator(await Deno.readFile(opts.creds)) } : {}),
  });
  return Object.assign(nc, {
    async [Symbol.asyncDispose]() {
      await nc.close().catch(() => {});
    },
  });
}
