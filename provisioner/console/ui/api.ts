/// <reference lib="dom" />
/** Console API client: JSON calls with the session's CSRF token on every action. */
let csrf: string | null = null;

/** An API error with the server's code. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

async function parse(r: Response): Promise<unknown> {
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const e = (body as { error?: { code?: string; message?: string } } | null)?.error;
    if (r.status === 401) location.reload(); // the server shows why (expired, not logged in)
    throw new ApiError(r.status, e?.code ?? "http", e?.message ?? `HTTP ${r.status}`);
  }
  return body;
}

/** GET a JSON API path. */
export async function get<T>(path: string): Promise<T> {
  return (await parse(await fetch(path, { credentials: "same-origin" }))) as T;
}

/** The session's CSRF token (fetched once). */
export async function csrfToken(): Promise<string> {
  csrf ??= (await get<{ csrf: string }>("/api/session")).csrf;
  return csrf;
}

/** POST an action. */
export async function post<T>(path: string, body: unknown): Promise<T> {
  const r = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": await csrfToken() },
    body: JSON.stringify(body),
  });
  return (await parse(r)) as T;
}

/** "12 s ago" style age. */
export function ago(t: number | null): string {
  if (t === null) return "never";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** Grants without the empty defaults: `{"exec":[...],"events":true}`. */
export function compactGrants(g: unknown): string {
  if (!g || typeof g !== "object") return "—";
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(g as Record<string, unknown>)) {
    if (v === false || v === null || (Array.isArray(v) && v.length === 0)) continue;
    if (k === "files" && v && typeof v === "object") {
      const f = v as { read?: unknown[]; write?: unknown[] };
      if (!f.read?.length && !f.write?.length) continue;
    }
    out[k] = v;
  }
  return Object.keys(out).length ? JSON.stringify(out) : "none";
}
