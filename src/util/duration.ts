/**
 * Durations as the config and specs spell them: `"250ms"`, `"30s"`, `"5m"`, `"1h"`,
 * `"7d"`, or combinations such as `"1m30s"`.
 *
 * @module
 */
import { z } from "zod";

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;

/**
 * Parses a duration string into milliseconds.
 *
 * @throws {SyntaxError} when the string is not a duration
 * @example
 * ```ts
 * parseDuration("1m30s"); // 90000
 * ```
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (!WHOLE.test(s)) {
    throw new SyntaxError(
      `Invalid duration: "${text}" (expected e.g. "500ms", "30s", "5m", "1h", "7d")`,
    );
  }
  let total = 0;
  for (const m of s.matchAll(PART)) total += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return Math.round(total);
}

/** Formats milliseconds as the shortest duration string, e.g. `90000` → `"1m30s"`. */
export function formatDuration(ms: number): string {
  if (ms <= 0) return "0s";
  let rest = Math.round(ms);
  let out = "";
  for (
    const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], [
      "s",
      1_000,
    ]] as const
  ) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  if (rest > 0) out += `${rest}ms`;
  return out;
}

/** zod schema for a duration string; keeps the string (parse with {@linkcode parseDuration}). */
export const durationSchema = z.string().refine((s) => WHOLE.test(s.trim()), {
  message: 'Invalid duration (expected e.g. "500ms", "30s", "5m", "1h", "7d")',
});
