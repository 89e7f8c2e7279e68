/**
 * HTTP answers of the console: JSON and HTML responses with the security headers, and a
 * request body read with a size cap.
 *
 * @module
 */

/** Largest action body accepted. */
export const MAX_BODY = 64 * 1024;

/** Headers on every answer: no sniffing, no framing, no referrer, a strict CSP. */
export const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "content-security-policy":
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
};

/** A JSON answer (never cached). */
export function json(body: unknown, status = 200, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      ...SECURITY_HEADERS,
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...extra,
    },
  });
}

/** A JSON error: `{"error":{"code","message"}}`. */
export function jsonError(status: number, code: string, message: string): Response {
  return json({ error: { code, message } }, status);
}

export function html(body: string, status = 200, extra: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8", ...extra },
  });
}

export function notice(title: string, text: string, status: number): Response {
  const esc = (s: string) =>
    s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
  return html(
    `<!doctype html><meta charset="utf-8"><title>${esc(title)} · Machine Room</title>` +
      `<link rel="stylesheet" href="/app.css"><main class="notice"><h1>${esc(title)}</h1>` +
      `<p>${esc(text)}</p></main>`,
    status,
  );
}

/** Reads a request body, or a 413 answer once it passes {@linkcode MAX_BODY}. */
export async function readBody(req: Request): Promise<Uint8Array | Response> {
  const len = Number(req.headers.get("content-length") ?? "0");
  if (len > MAX_BODY) return jsonError(413, "too_large", `body over ${MAX_BODY} bytes`);
  if (!req.body) return new Uint8Array();
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY) {
      await reader.cancel().catch(() => {});
      return jsonError(413, "too_large", `body over ${MAX_BODY} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}
