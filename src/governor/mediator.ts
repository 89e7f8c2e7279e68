/**
 * The governor mediator: a small responder with the customer account's vendor credentials
 * that does for nodes what their permissions cannot allow safely (NATS cannot limit a
 * message delete or a stream create to "one's own"). It listens on `mr.*.*.gov.*`; the
 * holder is the `<site>.<node>` of the request subject, which only that node may publish.
 *
 * | request subject | body | what it does |
 * |---|---|---|
 * | `mr.<site>.<node>.gov.release` | `{governor, seq}` | deletes `seq` only if it is the message on `mrgov.<governor>.<site>.<node>` |
 * | `mr.<site>.<node>.gov.ensure` | `{governor, capacity, lease_ms}` | creates a missing governor (never resizes one; at most `maxGovernors`) |
 * | `mr.<site>.<node>.gov.info` | `{governor}` | capacity, lease, held |
 * | `mr.<site>.<node>.gov.holders` | `{governor}` | the current holders |
 *
 * Replies are JSON; refusals are `{"error":{"code","message"}}`. `mr-saas serve` runs one
 * per customer account (queue group `mr-gov-mediator`, so several provisioners share the work).
 *
 * @module
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { z } from "zod";
import type { Logger } from "../log/logger.ts";
import { isId } from "../util/ids.ts";
import { listHolders } from "./governor.ts";
import { isNoMessageFound, isStreamNameInUse, isStreamNotFound } from "../nats/errors.ts";
import {
  DEFAULT_LEASE_MS,
  governorStream,
  governorStreamConfig,
  MEDIATOR_SUBJECTS,
  NS_PER_MS,
  slotSubject,
} from "./wire.ts";

/** Options of {@linkcode startGovernorMediator}. */
export interface GovernorMediatorOptions {
  /** Most governor streams it creates on nodes' requests in one account. @default {64} */
  maxGovernors?: number;
  /** Largest capacity a node may ask for when it creates a governor. @default {1000} */
  maxCapacity?: number;
  logger?: Logger;
  /** Queue group. @default {"mr-gov-mediator"} */
  queue?: string;
}

/** A running mediator. */
export interface GovernorMediator {
  /** Requests answered so far, refusals included. */
  readonly handled: number;
  stop(): Promise<void>;
}

const governorName = z.string().refine(isId, "expected ^[a-z0-9][a-z0-9_-]{0,62}$");
const schemas = {
  release: z.strictObject({ governor: governorName, seq: z.number().int().positive() }),
  ensure: z.strictObject({
    governor: governorName,
    capacity: z.number().int().positive(),
    lease_ms: z.number().int().min(1000).max(86_400_000).default(DEFAULT_LEASE_MS),
  }),
  info: z.strictObject({ governor: governorName }),
  holders: z.strictObject({ governor: governorName }),
};

class Refusal extends Error {
  override name = "Refusal";
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

const dec = new TextDecoder();

/** Starts the mediator on a connection with the account's vendor (admin) credentials. */
export async function startGovernorMediator(
  nc: NatsConnection,
  o: GovernorMediatorOptions = {},
): Promise<GovernorMediator> {
  const jsm = await jetstreamManager(nc);
  const maxGovernors = o.maxGovernors ?? 64;
  const maxCapacity = o.maxCapacity ?? 1000;
  let handled = 0;

  const info = async (name: string) => {
    try {
      const si = await jsm.streams.info(governorStream(name));
      return {
        capacity: si.config.max_msgs,
        leaseMs: Math.round(si.config.max_age / NS_PER_MS),
        held: si.state.messages,
      };
    } catch (err) {
      if (isStreamNotFound(err)) return null;
      throw err;
    }
  };

  const handle = async (site: string, node: string, op: string, body: unknown) => {
    switch (op) {
      case "release": {
        const r = schemas.release.parse(body);
        const own = slotSubject(r.governor, { site, node });
        let sm;
        try {
          sm = await jsm.streams.getMessage(governorStream(r.governor), { seq: r.seq });
        } catch (err) {
          if (isStreamNotFound(err) || isNoMessageFound(err)) {
            return { released: false };
          }
          throw err;
        }
        if (!sm) return { released: false };
        if (sm.subject !== own) {
          throw new Refusal(
            "not_yours",
            `slot ${r.seq} of governor "${r.governor}" is not held by ${site}.${node}`,
          );
        }
        try {
          return {
            released: await jsm.streams.deleteMessage(governorStream(r.governor), r.seq, false),
          };
        } catch (err) {
          if (isNoMessageFound(err)) return { released: false };
          throw err;
        }
      }
      case "ensure": {
        const r = schemas.ensure.parse(body);
        const have = await info(r.governor);
        if (have) {
          // a governor of the shape before holder-scoped slots (subject mr.gov.<name>): give
          // it the holder subjects, keeping the vendor's capacity and lease
          const si = await jsm.streams.info(governorStream(r.governor));
          const want = governorStreamConfig(r.governor, have.capacity, have.leaseMs);
          if (si.config.subjects?.join() !== want.subjects!.join()) {
            await jsm.streams.update(want.name, { ...si.config, ...want });
            o.logger?.info("governor reshaped", { governor: r.governor });
          }
          return { info: have, created: false };
        }
        if (r.capacity > maxCapacity) {
          throw new Refusal("too_large", `capacity ${r.capacity} is above ${maxCapacity}`);
        }
        let count = 0;
        for await (const n of jsm.streams.names(`mrgov.*.*.*`)) {
          if (n.startsWith("MR_GOV_")) count++;
        }
        if (count >= maxGovernors) {
          throw new Refusal(
            "too_many",
            `the account has ${count} governors (at most ${maxGovernors} are created on request)`,
          );
        }
        try {
          await jsm.streams.add(governorStreamConfig(r.governor, r.capacity, r.lease_ms));
        } catch (err) {
          if (!isStreamNameInUse(err)) throw err;
        }
        o.logger?.info("governor created on request", {
          governor: r.governor,
          capacity: r.capacity,
          by: `${site}.${node}`,
        });
        return { info: await info(r.governor), created: true };
      }
      case "info":
        return { info: await info(schemas.info.parse(body).governor) };
      case "holders":
        return { holders: await listHolders(jsm, schemas.holders.parse(body).governor) };
      default:
        throw new Refusal("unknown_op", `unknown governor operation "${op}"`);
    }
  };

  const sub: Subscription = nc.subscribe(MEDIATOR_SUBJECTS, {
    queue: o.queue ?? "mr-gov-mediator",
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      const [, site = "", node = "", , op = ""] = msg.subject.split(".");
      (async () => {
        handled++;
        if (!isId(site) || !isId(node)) throw new Refusal("bad_subject", "invalid holder subject");
        let body: unknown;
        try {
          body = JSON.parse(dec.decode(msg.data));
        } catch {
          throw new Refusal("bad_request", "request body is not JSON");
        }
        return await handle(site, node, op, body);
      })().then(
        (r) => msg.respond(JSON.stringify(r)),
        (err) => {
          const e = err instanceof Refusal ? err : err instanceof z.ZodError
            ? new Refusal(
              "bad_request",
              err.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "),
            )
            : new Refusal("internal", (err as Error).message);
          if (e.code === "internal") {
            o.logger?.warn("governor mediator failed", { subject: msg.subject, error: e.message });
          }
          msg.respond(JSON.stringify({ error: { code: e.code, message: e.message } }));
        },
      );
    },
  });
  await nc.flush();
  return {
    get handled() {
      return handled;
    },
    async stop() {
      sub.unsubscribe();
      await nc.flush().catch(() => {});
    },
  };
}
