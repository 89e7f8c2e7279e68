/**
 * KV key grants (`kv_read`): NATS-token patterns.
 *
 * @module
 */

/** Matches a KV key against NATS-token patterns (`*` one token, `>` the rest). */
export function kvKeyAllowed(key: string, patterns: readonly string[]): boolean {
  const toks = key.split(".");
  return patterns.some((p) => {
    const pt = p.split(".");
    for (let i = 0; i < pt.length; i++) {
      if (pt[i] === ">") return toks.length > i;
      if (i >= toks.length) return false;
      if (pt[i] !== "*" && pt[i] !== toks[i]) return false;
    }
    return pt.length === toks.length;
  });
}
