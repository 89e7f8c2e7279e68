/**
 * The enrolment service (`mr-saas serve`): `GET /v1/nonce`, `POST /v1/enroll`
 * (enroll.ts), `POST /v1/renew` (renew.ts). Nodes prove possession of their key by signing
 * a nonce; they get a user JWT limited to their own subjects (permissions.ts).
 *
 * @module
 */
import { audit } from "./audit.ts";
import { createMinter } from "./credentials.ts";
import { createEnroll, EnrollRequestSchema } from "./enroll.ts";
import { EnrollError } from "./errors.ts";
import { readHome } from "./home.ts";
import { memoryProofs } from "./proof.ts";
import { createRenew, RenewRequestSchema } from "./renew.ts";
import { readBody } from "./request.ts";

/** Options of {@linkcode serveProvisioner}. */
export interface ServeOptions {
  home: string;
  hostname?: string;
  port?: number;
  /** NATS URL(s) the nodes get. @default {the home's server} */
  servers?: string[];
  /** User JWT lifetime. @default {30 days} */
  credsTtlMs?: number;
  /** Optional vendor webhook: POST {customer, site, node, facts, ext} → {allow, settings?}. */
  webhook?: string;
  /** Enrolments per minute per client address. @default {600000} */
  ratePerMinute?: number;
}

/** Starts the enrolment service. */
export async function serveProvisioner(o: ServeOptions): Promise<Deno.HttpServer<Deno.NetAddr>> {
  const config = await readHome(o.home);
  const buckets = new Map<string, { tokens: number; at: number }>();
  const rate = o.ratePerMinute ?? 600_000;
  const minter = createMinter(o.home, { credsTtlMs: o.credsTtlMs ?? 30 * 86_400_000 });
  const proofs = memoryProofs();
  const enroll = createEnroll({
    home: o.home,
    config,
    minter,
    proofs,
    servers: o.servers ?? [config.server],
    ...(o.webhook ? { webhook: o.webhook } : {}),
  });
  const renew = createRenew({ home: o.home, minter, proofs });
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  const limited = (ip: string) => {
    const now = Date.now();
    const b = buckets.get(ip) ?? { tokens: rate, at: now };
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 60_000) * rate);
    b.at = now;
    buckets.set(ip, b);
    if (b.tokens < 1) return true;
    b.tokens -= 1;
    return false;
  };

  return Deno.serve(
    { hostname: o.hostname ?? "127.0.0.1", port: o.port ?? 0, onListen() {} },
    async (req, info) => {
      const url = new URL(req.url);
      const ip = (info.remoteAddr as Deno.NetAddr).hostname;
      if (limited(ip)) {
        return json(429, { error: { code: "rate_limited", message: "too many requests" } });
      }
      try {
        if (req.method === "GET" && url.pathname === "/v1/nonce") {
          return json(200, { nonce: await proofs.issue() });
        }
        if (req.method === "POST" && url.pathname === "/v1/enroll") {
          return json(200, await enroll(await readBody(req, EnrollRequestSchema)));
        }
        if (req.method === "POST" && url.pathname === "/v1/renew") {
          return json(200, await renew(await readBody(req, RenewRequestSchema)));
        }
        return json(404, { error: { code: "not_found", message: "no such endpoint" } });
      } catch (err) {
        const e = err instanceof EnrollError
          ? err
          : new EnrollError(500, "internal", (err as Error).message, { cause: err });
        await audit(o.home, {
          event: url.pathname,
          decision: "deny",
          code: e.code,
          reason: e.message,
          ip,
        });
        return json(e.status, { error: { code: e.code, message: e.message } });
      }
    },
  );
}
