/**
 * Per-client limits of the provisioner: a token-bucket rate limit and the aggregation of
 * unauthenticated refusals into one audit record per client per window.
 *
 * @module
 */

/** Requests per minute per client address when `serve --rate-limit` does not say. */
export const DEFAULT_RATE_PER_MINUTE = 600;

/**
 * Parses `N/min`, `N/s` or `N/h` (or a bare N per minute) into requests per minute.
 * @throws {TypeError} for anything else
 */
export function parseRate(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(s|sec|min|m|h|hour))?\s*$/.exec(text);
  if (!m) throw new TypeError(`rate must look like 600/min, 10/s or 36000/h, got "${text}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? "min";
  const perMin = unit.startsWith("s") ? n * 60 : unit.startsWith("h") ? n / 60 : n;
  if (!(perMin > 0)) throw new TypeError(`rate must be positive, got "${text}"`);
  return perMin;
}

/** A per-key token bucket: `perMinute` sustained, bursts up to `perMinute`. */
export function createRateLimiter(perMinute: number, now: () => number = Date.now) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    /** True when `key` is over its rate (the request is refused). */
    limited(key: string): boolean {
      const t = now();
      const b = buckets.get(key) ?? { tokens: perMinute, at: t };
      b.tokens = Math.min(perMinute, b.tokens + ((t - b.at) / 60_000) * perMinute);
      b.at = t;
      buckets.set(key, b);
      if (buckets.size > 50_000) {
        // forget clients whose bucket is full again (they are as good as new)
        for (const [k, v] of buckets) {
          if (v.tokens + ((t - v.at) / 60_000) * perMinute >= perMinute) buckets.delete(k);
        }
      }
      if (b.tokens < 1) return true;
      b.tokens -= 1;
      return false;
    },
  };
}

/** One client's refusals in the current window. */
export interface DenialSummary {
  ip: string;
  count: number;
  codes: Record<string, number>;
  from: string;
  to: string;
}

/** Counts refusals per client; `drain()` hands out one summary per client and resets. */
export function createDenialCounter(now: () => number = Date.now, maxClients = 10_000) {
  let window = new Map<string, DenialSummary>();
  return {
    add(ip: string, code: string): void {
      const key = window.has(ip) || window.size < maxClients ? ip : "(other clients)";
      const at = new Date(now()).toISOString();
      const s = window.get(key) ?? { ip: key, count: 0, codes: {}, from: at, to: at };
      s.count++;
      s.codes[code] = (s.codes[code] ?? 0) + 1;
      s.to = at;
      window.set(key, s);
    },
    drain(): DenialSummary[] {
      const out = [...window.values()];
      window = new Map();
      return out;
    },
  };
}
