/**
 * The `renewal` daemon module: renews the node's NATS user JWT with the provisioner
 * (`POST /v1/renew`, signed by the node key) `provisioner.renew_before` ahead of its
 * expiry, rewrites `identity/node.creds` atomically (0600) and reconnects so the server
 * sees the new credentials. Failures retry with backoff and show in health; a refusal
 * (revoked node) is reported as `lifecycle.v1.renewal_refused` — the node then needs a new
 * token.
 *
 * @module
 */
import type { NodeConfig } from "../config/schema.ts";
import type { DaemonContext, DaemonModule } from "../daemon/types.ts";
import { parseDuration } from "../util/duration.ts";
import { jittered } from "../util/backoff.ts";

/** Longest wait between renewal attempts once the credentials have expired. */
const EXPIRED_RETRY_MS = 30_000;
import { atomicWrite } from "../util/atomic_write.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function b64url(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The user JWT and seed of a creds file. */
export function parseCredsText(text: string): { jwt: string; seed: string } {
  const jwt = /-----BEGIN NATS USER JWT-----\s*([^\s-][^\s]*)\s*------END NATS USER JWT------/.exec(
    text,
  )?.[1];
  const seed = /-----BEGIN USER NKEY SEED-----\s*(SU[A-Z2-7]+)\s*------END USER NKEY SEED------/
    .exec(text)?.[1];
  if (!jwt || !seed) throw new Error("creds file has no user JWT or seed");
  return { jwt, seed };
}

/** Expiry (ms epoch) of a JWT, or null when it has none. */
export function jwtExpiry(jwt: string): number | null {
  const p = jwt.split(".")[1] ?? "";
  const claims = JSON.parse(
    dec.decode(
      Uint8Array.from(atob(p.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)),
    ),
  );
  return typeof claims.exp === "number" ? claims.exp * 1000 : null;
}

/** Subject (user key) of a JWT, or null when it is not one. */
export function jwtSubject(jwt: string): string | null {
  try {
    const p = jwt.split(".")[1] ?? "";
    const claims = JSON.parse(
      dec.decode(
        Uint8Array.from(atob(p.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)),
      ),
    );
    return typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}

/** Creates the module; `null` for nodes without a provisioner or creds. */
export function createRenewalModule(config: NodeConfig): DaemonModule | null {
  const prov = config.provisioner;
  if (!config.nats.creds || !prov) return null;
  const credsPath: string = config.nats.creds;
  const before = parseDuration(prov.renew_before);
  let ctx: DaemonContext | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let backoff = 30_000;
  let expiresAt: number | null = null;
  let lastRenewal: string | null = null;
  let lastError: string | null = null;
  let refused = false;

  const schedule = (ms: number) => {
    clearTimeout(timer);
    // long waits are re-evaluated hourly (clock changes, a creds file replaced by hand)
    timer = setTimeout(check, Math.max(0, Math.min(ms, 3_600_000)));
  };

  const renew = async (): Promise<void> => {
    // loaded when a renewal is due, not kept resident by every idle daemon
    const [{ fmtCreds }, { fromSeed }, { openSigned, provisionerUrlProblem }] = await Promise
      .all([
        import("@nats-io/jwt"),
        import("@nats-io/nkeys"),
        import("./verify.ts"),
      ]);
    const text = await Deno.readTextFile(credsPath);
    const { jwt, seed } = parseCredsText(text);
    const kp = fromSeed(enc.encode(seed));
    const base = prov.url.replace(/\/+$/, "");
    // a config from an enrolment that knew the provisioner's key follows the enrolment rules
    const problem = prov.key ? provisionerUrlProblem(prov.url, prov.insecure_http === true) : null;
    if (problem) throw new Error(problem);
    const { nonce } =
      await (await fetch(`${base}/v1/nonce`, { signal: AbortSignal.timeout(15_000) })).json();
    const res = await fetch(`${base}/v1/renew`, {
      method: "POST",
      signal: AbortSignal.timeout(30_000),
      body: JSON.stringify({ user_jwt: jwt, nonce, signature: b64url(kp.sign(enc.encode(nonce))) }),
    });
    const body = await res.json().catch(() => ({})) as {
      user_jwt?: string;
      signed?: unknown;
      error?: { code: string; message: string };
    };
    if (!res.ok || !body.user_jwt) {
      const err = new Error(body.error?.message ?? `HTTP ${res.status}`);
      (err as Error & { code?: string }).code = body.error?.code ?? "failed";
      throw err;
    }
    if (prov.key) {
      const opened = await openSigned(body.signed, prov.key, {
        publicKey: kp.getPublicKey(),
        nonce,
      });
      if (typeof opened === "string") throw new Error(opened);
      body.user_jwt = opened.user_jwt as string;
    }
    // a JWT for another key (or not a JWT) would lock the node out: keep the old creds
    if (jwtSubject(body.user_jwt) !== kp.getPublicKey()) {
      throw new Error("the provisioner answered with credentials for another key");
    }
    await atomicWrite(credsPath, fmtCreds(body.user_jwt, kp));
    expiresAt = jwtExpiry(body.user_jwt);
    lastRenewal = new Date().toISOString();
    lastError = null;
    ctx?.logger.info("credentials renewed", {
      expires_at: expiresAt ? new Date(expiresAt).toISOString() : null,
    });
    await ctx?.outbox.event("lifecycle", "renewed", {
      expires_at: expiresAt ? new Date(expiresAt).toISOString() : null,
    }, { priority: 1 }).catch(() => {});
    // reconnect so the server holds the new credentials (the connection re-reads the file)
    const nc = ctx?.natsNow() as { reconnect?: () => Promise<void> } | null;
    await nc?.reconnect?.().catch(() => {});
  };

  async function check(): Promise<void> {
    if (!ctx || refused) return;
    try {
      const { jwt } = parseCredsText(await Deno.readTextFile(credsPath));
      expiresAt = jwtExpiry(jwt);
      if (expiresAt === null) return; // never expires
      const due = expiresAt - before - Date.now();
      if (due > 0) return schedule(due);
      if (
        lastRenewal && expiresAt - Date.now() > 10_000 &&
        Date.now() - Date.parse(lastRenewal) < (expiresAt - Date.now()) / 2
      ) {
        return schedule(Math.max((expiresAt - Date.now()) / 2, 5_000));
      }
      await renew();
      backoff = 30_000;
      // credentials shorter-lived than renew_before: renew at half of what is left
      const exp = expiresAt ?? Date.now();
      const next = exp - before - Date.now();
      schedule(next > 0 ? next : Math.max((exp - Date.now()) / 2, 5_000));
    } catch (err) {
      const code = (err as { code?: string }).code;
      lastError = (err as Error).message;
      ctx?.logger.warn("credential renewal failed", { error: lastError, code });
      if (code === "revoked" || code === "account_revoked" || code === "unknown_account") {
        refused = true;
        await ctx?.outbox.event("lifecycle", "renewal_refused", { code, reason: lastError }, {
          priority: 1,
        })
          .catch(() => {});
        return;
      }
      // while the credentials are valid, retry at least twice before they expire (half of
      // what is left, ≥ 5 s); once expired the node is cut off: retry every ≤ 30 s
      const left = expiresAt === null ? Infinity : expiresAt - Date.now();
      const nominal = left > 0
        ? Math.min(backoff, Math.max(5_000, left / 2))
        : Math.min(backoff, EXPIRED_RETRY_MS);
      backoff = Math.min(backoff * 2, 600_000);
      schedule(jittered(nominal));
    }
  }

  return {
    name: "renewal",
    start(c) {
      ctx = c;
      check();
      return Promise.resolve();
    },
    stop() {
      clearTimeout(timer);
      ctx = null;
      return Promise.resolve();
    },
    health() {
      const soon = expiresAt !== null && expiresAt - Date.now() < before / 2;
      return {
        status: refused || (soon && lastError) ? "degraded" : "healthy",
        expires_at: expiresAt ? new Date(expiresAt).toISOString() : null,
        last_renewal: lastRenewal,
        last_error: lastError,
        refused,
      };
    },
  };
}
