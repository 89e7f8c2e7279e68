/**
 * Content-addressed agent modules: `<dir>/sha256/<hex>.wasm`.
 *
 * `fetch({sha256, size, url})` returns the verified bytes from the cache or downloads
 * them: `s3://bucket/key` is resolved path-style against the config's `s3.endpoint` and
 * signed with SigV4 (`npm:aws4fetch`) when credentials are configured; `http(s)://` is a
 * plain GET. The body streams to a temp file while being hashed; only a matching size and
 * sha256 is renamed into place (atomic). Network errors and 5xx are retried with jittered
 * backoff; 403/404 and hash or size mismatches fail at once. Concurrent fetches of one
 * hash share one download.
 *
 * @module
 */
import { AwsClient } from "aws4fetch";
import { join } from "node:path";
import { createHash } from "node:crypto";
import type { NodeConfig } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { jittered } from "../util/backoff.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { atomicReplace } from "../util/atomic_write.ts";

/** Why a fetch failed. */
export type ArtifactErrorCode = "not_found" | "hash_mismatch" | "size_mismatch" | "download_failed";

/** A failed fetch; `code` says why, the message names the URL and values. */
export class ArtifactError extends Error {
  override name = "ArtifactError";
  constructor(readonly code: ArtifactErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** What to fetch (the spec's `wasm` block). */
export interface ArtifactRef {
  sha256: string;
  size: number;
  url: string;
}

/** Options of {@linkcode createArtifactStore}. */
export interface ArtifactStoreOptions {
  /** Cache directory (`<state_dir>/cas`). */
  dir: string;
  s3?: NodeConfig["s3"];
  logger?: Logger;
  /** @default {4} */
  attempts?: number;
  /** Per-attempt timeout. @default {60000} */
  timeoutMs?: number;
  fetchImpl?: typeof fetch;
  /** Clock of the retry waits. @default {systemClock} */
  clock?: Clock;
}

/** The content-addressed store. */
export interface ArtifactStore {
  /** Verified bytes of `ref` (cached, else downloaded). */
  fetch(ref: ArtifactRef): Promise<Uint8Array>;
  has(sha256: string): Promise<boolean>;
  /** Removes cached modules not in `keep`; returns how many. */
  gc(keep: Set<string>): Promise<number>;
  /** The cache path of a hash. */
  path(sha256: string): string;
}

const HEX = /^[0-9a-f]{64}$/;

/** Resolves an `s3://bucket/key` URL to a path-style HTTP URL on `endpoint`. */
export function s3HttpUrl(url: string, s3?: NodeConfig["s3"]): string {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m) throw new ArtifactError("download_failed", `invalid s3 URL "${url}"`);
  const endpoint = (s3?.endpoint ?? `https://s3.${s3?.region ?? "us-east-1"}.amazonaws.com`)
    .replace(/\/+$/, "");
  return `${endpoint}/${m[1]}/${m[2]!.split("/").map(encodeURIComponent).join("/")}`;
}

/** Creates a store. */
export function createArtifactStore(o: ArtifactStoreOptions): ArtifactStore {
  const dir = join(o.dir, "sha256");
  const attempts = o.attempts ?? 4;
  const timeoutMs = o.timeoutMs ?? 60_000;
  const doFetch = o.fetchImpl ?? fetch;
  const aws = o.s3
    ? new AwsClient({
      accessKeyId: o.s3.access_key_id,
      secretAccessKey: o.s3.secret_access_key,
      region: o.s3.region,
      service: "s3",
    })
    : null;
  const inflight = new Map<string, Promise<Uint8Array>>();
  // a fresh connection per download: downloads are rare, and a pooled connection left in a
  // bad state by an aborted transfer must not stall the next one until its timeout
  let client: Deno.HttpClient | null = null;
  const httpClient = () => (client ??= Deno.createHttpClient({ poolMaxIdlePerHost: 0 }));
  const path = (sha: string) => join(dir, `${sha}.wasm`);

  const readCached = async (ref: ArtifactRef): Promise<Uint8Array | null> => {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path(ref.sha256));
    } catch {
      return null;
    }
    const actual = createHash("sha256").update(bytes).digest("hex");
    if (actual !== ref.sha256) {
      o.logger?.warn("cached module corrupt; downloading again", { sha256: ref.sha256 });
      await Deno.remove(path(ref.sha256)).catch(() => {});
      return null;
    }
    return bytes;
  };

  const downloadOnce = async (ref: ArtifactRef): Promise<Uint8Array> => {
    const httpUrl = ref.url.startsWith("s3://") ? s3HttpUrl(ref.url, o.s3) : ref.url;
    const req = new Request(httpUrl, { signal: AbortSignal.timeout(timeoutMs) });
    const signed = ref.url.startsWith("s3://") && aws ? await aws.sign(req) : req;
    let res: Response;
    try {
      res = await doFetch(signed, { client: httpClient() });
    } catch (err) {
      throw new ArtifactError("download_failed", `GET ${ref.url}: ${(err as Error).message}`);
    }
    if (res.status === 404 || res.status === 403) {
      await res.body?.cancel();
      throw new ArtifactError(
        "not_found",
        `GET ${ref.url}: HTTP ${res.status} (object missing or access denied)`,
      );
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new ArtifactError("download_failed", `GET ${ref.url}: HTTP ${res.status}`);
    }
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const hash = createHash("sha256");
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      // the temp file is renamed into place only when size and hash match
      await atomicReplace(path(ref.sha256), async (file) => {
        for await (const chunk of res.body!) {
          size += chunk.byteLength;
          if (size > ref.size) {
            throw new ArtifactError(
              "size_mismatch",
              `GET ${ref.url}: more than the expected ${ref.size} bytes`,
            );
          }
          hash.update(chunk);
          chunks.push(chunk);
          let off = 0;
          while (off < chunk.byteLength) off += await file.write(chunk.subarray(off));
        }
        if (size !== ref.size) {
          throw new ArtifactError(
            "size_mismatch",
            `GET ${ref.url}: expected ${ref.size} bytes, got ${size}`,
          );
        }
        const actual = hash.digest("hex");
        if (actual !== ref.sha256) {
          throw new ArtifactError(
            "hash_mismatch",
            `GET ${ref.url}: expected sha256 ${ref.sha256}, got ${actual}`,
          );
        }
      });
    } catch (err) {
      await res.body.cancel().catch(() => {});
      if (err instanceof ArtifactError) throw err;
      throw new ArtifactError("download_failed", `GET ${ref.url}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const out = new Uint8Array(size);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.byteLength;
    }
    return out;
  };

  const download = async (ref: ArtifactRef): Promise<Uint8Array> => {
    let delay = 250;
    for (let i = 1;; i++) {
      try {
        return await downloadOnce(ref);
      } catch (err) {
        const retry = err instanceof ArtifactError && err.code === "download_failed" &&
          i < attempts;
        if (!retry) throw err;
        const wait = jittered(delay);
        o.logger?.warn("module download failed; retrying", {
          url: ref.url,
          attempt: i,
          error: (err as Error).message,
          retry_ms: wait,
        });
        await (o.clock ?? systemClock).sleep(wait);
        delay = Math.min(delay * 2, 10_000);
      }
    }
  };

  return {
    path,
    fetch(ref) {
      if (!HEX.test(ref.sha256)) {
        return Promise.reject(new ArtifactError("hash_mismatch", `invalid sha256 "${ref.sha256}"`));
      }
      const running = inflight.get(ref.sha256);
      if (running) return running;
      const p = (async () => {
        const cached = await readCached(ref);
        if (cached) return cached;
        return await download(ref);
      })().finally(() => inflight.delete(ref.sha256));
      inflight.set(ref.sha256, p);
      return p;
    },
    async has(sha) {
      try {
        await Deno.stat(path(sha));
        return true;
      } catch {
        return false;
      }
    },
    async gc(keep) {
      let n = 0;
      try {
        for await (const e of Deno.readDir(dir)) {
          const m = /^([0-9a-f]{64})\.wasm$/.exec(e.name);
          if (m && !keep.has(m[1]!) && !inflight.has(m[1]!)) {
            await Deno.remove(join(dir, e.name)).catch(() => {});
            n++;
          }
        }
      } catch { /* no cache yet */ }
      return n;
    },
  };
}
