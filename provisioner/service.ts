/**
 * The enrolment service (`mr-saas serve`): `GET /v1/nonce`, `POST /v1/enroll`
 * (enroll.ts), `POST /v1/renew` (renew.ts). Nodes prove possession of their key by signing
 * a nonce; they get a user JWT limited to their own subjects (permissions.ts).
 *
 * Limits (limits.ts, request.ts): bodies over 64 KiB get 413 (counted while streaming),
 * a per-client rate limit gets 429, bodies are validated with zod (400 naming the path).
 * Unauthenticated refusals are summed per client into one audit record per window; refusals
 * after a token or JWT verified are recorded one by one. Several instances may share one
 * vendor home's keys and the records in NATS (records.ts).
 *
 * @module
 */
import { join } from "node:path";
import { nkeySigner } from "../src/util/ed25519.ts";
import { audit, auditKey } from "./audit.ts";
import { createMinter } from "./credentials.ts";
import { createEnroll, EnrollRequestSchema } from "./enroll.ts";
import { EnrollError } from "./errors.ts";
import { readHome } from "./home.ts";
import { createDenialCounter, createRateLimiter, DEFAULT_RATE_PER_MINUTE } from "./limits.ts";
import { createProofs } from "./proof.ts";
import { openRecords, type Records } from "./records.ts";
import { createRenew, RenewRequestSchema } from "./renew.ts";
import { MAX_BODY_BYTES, readBody } from "./request.ts";

/** Options of {@linkcode serveProvisioner}. */
export interface ServeOptions {
  home: string;
  hostname?: string;
  port?: number;
  /** NATS URL(s) the nodes get. @default {the home's server} */
  servers?: string[];
  /** NATS URL of the vendor account's records. @default {the first of `servers`} */
  recordsServer?: string;
  /** User JWT lifetime. @default {30 days} */
  credsTtlMs?: number;
  /** Optional vendor webhook: POST {customer, site, node, facts, ext} → {allow, settings?}. */
  webhook?: string;
  /** Requests per minute per client address. @default {DEFAULT_RATE_PER_MINUTE} (600) */
  ratePerMinute?: number;
  /** Largest request body. @default {65536} */
  maxBodyBytes?: number;
  /** Window of the aggregated refusal records. @default {60_000} */
  auditWindowMs?: number;
  /** @default {Date.now} */
  now?: () => number;
}

/** A running provisioner; `shutdown()` also flushes the refusal summaries and closes NATS. */
export type Provisioner = Deno.HttpServer<Deno.NetAddr>;

function b64url(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Starts the enrolment service. */
export async function serveProvisioner(o: ServeOptions): Promise<Provisioner> {
  const config = await readHome(o.home);
  const now = o.now ?? Date.now;
  const servers = o.servers ?? [config.server];
  const records: Records = await openRecords(o.home, o.recordsServer ?? servers[0]);
  try {
    return await start(o, config, records, servers, now);
  } catch (err) {
    await records.close();
    throw err;
  }
}

async function start(
  o: ServeOptions,
  config: Awaited<ReturnType<typeof readHome>>,
  records: Records,
  servers: string[],
  now: () => number,
): Promise<Provisioner> {
  const minter = createMinter(o.home, { credsTtlMs: o.credsTtlMs ?? 30 * 86_400_000, now });
  const proofs = createProofs({ key: await auditKey(o.home), records, now });
  const provSign = await nkeySigner(
    (await Deno.readTextFile(join(o.home, "keys", "provisioner.nk"))).trim(),
  );
  const enroll = createEnroll({
    home: o.home,
    config,
    minter,
    proofs,
    records,
    servers,
    sign: async (p) => b64url(await provSign(p)),
    now,
    ...(o.webhook ? { webhook: o.webhook } : {}),
  });
  const renew = createRenew({
    home: o.home,
    minter,
    proofs,
    records,
    now,
    sign: async (p) => b64url(await provSign(p)),
  });
  const rate = createRateLimiter(o.ratePerMinute ?? DEFAULT_RATE_PER_MINUTE, now);
  const denials = createDenialCounter(now);
  const maxBody = o.maxBodyBytes ?? MAX_BODY_BYTES;
  const flush = async () => {
    for (const s of denials.drain()) {
      await audit(o.home, { event: "deny.summary", decision: "deny", ...s }, {
        anchor: records,
      }).catch(() => {});
    }
  };
  const timer = setInterval(flush, o.auditWindowMs ?? 60_000);
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

  const srv = Deno.serve(
    { hostname: o.hostname ?? "127.0.0.1", port: o.port ?? 0, onListen() {} },
    async (req, info) => {
      const url = new URL(req.url);
      const ip = (info.remoteAddr as Deno.NetAddr).hostname;
      if (rate.limited(ip)) {
        denials.add(ip, "rate_limited");
        return json(429, {
          error: { code: "rate_limited", message: "too many requests from this address" },
        });
      }
      let authed = false;
      const onAuth = () => {
        authed = true;
      };
      try {
        if (req.method === "GET" && url.pathname === "/v1/nonce") {
          return json(200, { nonce: proofs.issue() });
        }
        if (req.method === "POST" && url.pathname === "/v1/enroll") {
          return json(200, await enroll(await readBody(req, EnrollRequestSchema, maxBody), onAuth));
        }
        if (req.method === "POST" && url.pathname === "/v1/renew") {
          return json(200, await renew(await readBody(req, RenewRequestSchema, maxBody), onAuth));
        }
        throw new EnrollError(404, "not_found", "no such endpoint");
      } catch (err) {
        const e = err instanceof EnrollError
          ? err
          : new EnrollError(500, "internal", "internal error", { cause: err });
        if (authed || e.status >= 500) {
          await audit(o.home, {
            event: url.pathname,
            decision: "deny",
            code: e.code,
            reason: e.status >= 500 ? String((err as Error)?.message ?? err) : e.message,
            ip,
          }, { anchor: records }).catch(() => {});
        } else {
          denials.add(ip, e.code);
        }
        return json(e.status, { error: { code: e.code, message: e.message } });
      }
    },
  );
  const shutdown = srv.shutdown.bind(srv);
  let closing: Promise<void> | null = null;
  const stop = () =>
    closing ??= (async () => {
      await shutdown();
      clearInterval(timer);
      await flush();
      await records.close();
    })();
  return Object.assign(srv, { shutdown: stop, [Symbol.asyncDispose]: stop });
}
