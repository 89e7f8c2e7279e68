/**
 * Commands: request/reply on `mr.<site>.<node>.cmd.<command>` (DESIGN §4).
 *
 * Request payload: JSON (or empty for `null`). Reply: the handler's JSON result, or
 * `{"error":{"code","message"}}` with code `bad_request` (payload not JSON, or the
 * handler threw a `CommandError` with that code), `unknown_command`, or `failed`.
 * A malformed request never crashes the daemon.
 *
 * @module
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { CommandHandler } from "../daemon/types.ts";
import type { Logger } from "../log/logger.ts";

/** An error a handler throws to choose the reply's error code. */
export class CommandError extends Error {
  override name = "CommandError";
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

const dec = new TextDecoder();
const enc = new TextEncoder();

/** Parses a request payload: empty → `null`; otherwise JSON or a `bad_request` error. */
export function parseCommandPayload(data: Uint8Array): unknown {
  if (data.byteLength === 0) return null;
  const text = dec.decode(data).trim();
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CommandError("bad_request", `payload is not JSON: ${(err as Error).message}`);
  }
}

/** Runs a handler for one command request and returns the reply document. */
export async function dispatchCommand(
  handlers: Record<string, CommandHandler>,
  command: string,
  data: Uint8Array,
  logger?: Logger,
): Promise<unknown> {
  const handler = Object.hasOwn(handlers, command) ? handlers[command] : undefined;
  if (!handler) {
    return {
      error: {
        code: "unknown_command",
        message: `unknown command "${command}"; known: ${Object.keys(handlers).sort().join(", ")}`,
      },
    };
  }
  try {
    const payload = parseCommandPayload(data);
    const result = await handler(payload);
    return result === undefined ? null : result;
  } catch (err) {
    const code = err instanceof CommandError ? err.code : "failed";
    const message = (err as Error)?.message ?? String(err);
    if (code === "failed") logger?.warn("command failed", { command, error: message });
    return { error: { code, message } };
  }
}

/** Serves commands on one connection; returns the subscription. */
export function serveCommands(
  nc: NatsConnection,
  prefix: string,
  handlers: () => Record<string, CommandHandler>,
  logger: Logger,
): Subscription {
  const sub = nc.subscribe(`${prefix}.cmd.*`, {
    callback: (err: Error | null, msg: Msg) => {
      if (err) {
        logger.warn("command subscription error", { error: err.message });
        return;
      }
      const command = msg.subject.slice(prefix.length + 5);
      dispatchCommand(handlers(), command, msg.data, logger).then((reply) => {
        if (!msg.reply) return;
        let body: Uint8Array;
        try {
          body = enc.encode(JSON.stringify(reply));
        } catch (e) {
          body = enc.encode(
            JSON.stringify({
              error: { code: "failed", message: `reply not JSON: ${(e as Error).message}` },
            }),
          );
        }
        try {
          msg.respond(body);
        } catch (e) {
          logger.warn("cannot send command reply", { command, error: (e as Error).message });
        }
      });
    },
  });
  return sub;
}
