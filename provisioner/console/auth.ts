/**
 * Console authentication, Jupyter style: the console prints a login URL with a random token
 * at start; opening it sets an HttpOnly, SameSite=Strict session cookie. Every action
 * (POST) also needs the session's CSRF token in `X-CSRF-Token`. Tokens are compared in
 * constant time; sessions expire after {@linkcode SessionOptions.idleMs} of inactivity
 * and {@linkcode SessionOptions.maxAgeMs} in total.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";

/** Options of {@linkcode createSessions}. */
export interface SessionOptions {
  /** @default {3_600_000} (1 h) */
  idleMs?: number;
  /** @default {43_200_000} (12 h) */
  maxAgeMs?: number;
  /** Live sessions kept at most (oldest evicted). @default {1000} */
  maxSessions?: number;
  /** @default {Date.now} */
  now?: () => number;
  /** The login token; random when absent. */
  loginToken?: string;
}

/** A browser session. */
export interface Session {
  id: string;
  csrf: string;
  created: number;
  lastUsed: number;
}

/** Why a request has no valid session. */
export type SessionProblem = "missing" | "unknown" | "expired";

/** The session store of one console process. */
export interface Sessions {
  /** The secret in the login URL. */
  readonly loginToken: string;
  /** A new session if `token` is the login token, else `null`. */
  login(token: string): Session | null;
  /** The session named by the request's cookie, or why there is none. */
  check(req: Request): Session | SessionProblem;
  /** True when the request carries this session's CSRF token. */
  csrfOk(session: Session, req: Request): boolean;
  logout(session: Session): void;
  cookie(session: Session): string;
  /** Number of live sessions. */
  count(): number;
}

/** The session cookie's name. */
export const COOKIE = "mr_console";

/** 32 random bytes as base64url. */
export function randomToken(): string {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...b)).replaceAll("+", "-").replaceAll("/", "_").replace(
    /=+$/,
    "",
  );
}

/** Constant-time string comparison. */
export function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieValue(req: Request, name: string): string | null {
  const header = req.headers.get("cookie");
  if (!header) return null;
  for (const part of header.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return null;
}

/** Creates the session store. */
export function createSessions(o: SessionOptions = {}): Sessions {
  const now = o.now ?? Date.now;
  const idleMs = o.idleMs ?? 3_600_000;
  const maxAgeMs = o.maxAgeMs ?? 43_200_000;
  const max = o.maxSessions ?? 1000;
  const loginToken = o.loginToken ?? randomToken();
  const sessions = new Map<string, Session>();
  // ids of sessions that timed out, so a browser is told "expired" rather than "unknown"
  const expired = new Set<string>();
  return {
    loginToken,
    login(token) {
      if (!sameSecret(token, loginToken)) return null;
      const t = now();
      const s: Session = { id: randomToken(), csrf: randomToken(), created: t, lastUsed: t };
      sessions.set(s.id, s);
      while (sessions.size > max) sessions.delete(sessions.keys().next().value!);
      return s;
    },
    check(req) {
      const id = cookieValue(req, COOKIE);
      if (!id) return "missing";
      const s = sessions.get(id);
      if (!s) return expired.has(id) ? "expired" : "unknown";
      const t = now();
      if (t - s.lastUsed > idleMs || t - s.created > maxAgeMs) {
        sessions.delete(id);
        expired.add(id);
        if (expired.size > max) expired.delete(expired.values().next().value!);
        return "expired";
      }
      s.lastUsed = t;
      return s;
    },
    csrfOk(s, req) {
      const h = req.headers.get("x-csrf-token");
      return h !== null && sameSecret(h, s.csrf);
    },
    logout(s) {
      sessions.delete(s.id);
    },
    cookie(s) {
      return `${COOKIE}=${s.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${
        Math.floor(maxAgeMs / 1000)
      }`;
    },
    count: () => sessions.size,
  };
}
