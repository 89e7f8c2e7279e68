/**
 * `mr_http`: a request to a granted `host:port`, no redirects followed, body capped.
 *
 * @module
 */
import type { HostCallContext } from "./context.ts";
import { deny, remainingMs } from "./checks.ts";
import { HostCallError } from "./errors.ts";
import { MAX_HOST_WRITE_BYTES } from "./limits.ts";
import { readCapped } from "./stream.ts";

/** The input of `mr_http` after its schema. */
export interface HttpInput {
  url: string;
  method?: string | undefined;
  headers?: Record<string, string> | undefined;
  body?: string | undefined;
  timeout_ms?: number | undefined;
}

/** Runs `mr_http`. */
export async function httpRequest(
  ctx: HostCallContext,
  v: HttpInput,
): Promise<{ status: number; headers: Record<string, string>; body: string; ms: number }> {
  let url: URL;
  try {
    url = new URL(v.url);
  } catch {
    throw new HostCallError("invalid_input", `Invalid URL: "${v.url}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new HostCallError("invalid_input", `Unsupported URL scheme: "${url.protocol}"`);
  }
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  const hostPort = `${url.hostname}:${port}`;
  if (!ctx.grants.http.includes(hostPort)) {
    deny(ctx, "mr_http", `Host not granted: "${hostPort}"`, { host: hostPort });
  }
  if (v.body !== undefined && new TextEncoder().encode(v.body).length > MAX_HOST_WRITE_BYTES) {
    throw new HostCallError("payload_too_large", `body is more than ${MAX_HOST_WRITE_BYTES} bytes`);
  }
  const timeout = remainingMs(ctx, v.timeout_ms);
  const started = performance.now();
  try {
    const res = await fetch(url, {
      method: v.method ?? "GET",
      headers: v.headers ?? {},
      ...(v.body !== undefined ? { body: v.body } : {}),
      redirect: "manual",
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(timeout)]),
    });
    const body = await readCapped(res.body);
    return {
      status: res.status,
      headers: Object.fromEntries(res.headers),
      body,
      ms: Math.round(performance.now() - started),
    };
  } catch (err) {
    if (err instanceof DOMException && (err.name === "TimeoutError" || err.name === "AbortError")) {
      throw new HostCallError("timeout", `Request to "${hostPort}" timed out after ${timeout} ms`);
    }
    throw new HostCallError(
      "io_error",
      `Request to "${hostPort}" failed: ${(err as Error).message}`,
    );
  }
}
