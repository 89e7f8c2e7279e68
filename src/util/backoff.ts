/**
 * Jittered exponential backoff, the one formula every retry loop here uses.
 *
 * The delay for attempt `n` (0-based) is `min(maxMs, minMs * multiplier^n)`, then
 * randomised down by up to `jitter` of itself: with the default `jitter: 0.5` it lies in
 * `[d/2, d]`, so a fleet that failed together does not retry together, yet no retry comes
 * sooner than half the nominal delay. (denoland/std's `async/_util.ts` uses the same shape.)
 *
 * @module
 */

/** Options for {@linkcode backoffDelay} and {@linkcode Backoff}. */
export interface BackoffOptions {
  /** Nominal delay of the first retry. @default {1000} */
  minMs?: number;
  /** Cap on the nominal delay. @default {60000} */
  maxMs?: number;
  /** Growth per attempt. @default {2} */
  multiplier?: number;
  /** Fraction of the delay that is randomised away (0 = none, 1 = full jitter). @default {0.5} */
  jitter?: number;
  /** Random source in [0, 1). @default {Math.random} */
  random?: () => number;
}

/**
 * The jittered delay before retry `attempt` (0 for the first retry).
 *
 * @example
 * ```ts
 * backoffDelay(0, { minMs: 250 }); // 125..250
 * backoffDelay(10, { minMs: 250, maxMs: 10_000 }); // 5000..10000
 * ```
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const min = options.minMs ?? 1000;
  const max = options.maxMs ?? 60_000;
  const mult = options.multiplier ?? 2;
  const jitter = options.jitter ?? 0.5;
  if (!(min >= 0) || !(max >= min)) {
    throw new RangeError(`Invalid backoff bounds: minMs ${min}, maxMs ${max}`);
  }
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`Invalid jitter: ${jitter}`);
  if (!(mult >= 1)) throw new RangeError(`Invalid multiplier: ${mult}`);
  const nominal = Math.min(max, min * mult ** Math.max(0, attempt));
  return jittered(nominal, options);
}

/**
 * `ms` randomised down by up to `jitter` of itself (for a loop that keeps its own nominal
 * delay, e.g. one reset by something other than success).
 *
 * @example
 * ```ts
 * jittered(1000); // 500..1000
 * ```
 */
export function jittered(
  ms: number,
  options: Pick<BackoffOptions, "jitter" | "random"> = {},
): number {
  const jitter = options.jitter ?? 0.5;
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`Invalid jitter: ${jitter}`);
  return Math.round(ms * (1 - jitter * (options.random ?? Math.random)()));
}

/**
 * A retry loop's backoff state: `next()` returns the delay before the next attempt and
 * counts it, `reset()` after a success.
 *
 * @example
 * ```ts
 * const b = new Backoff({ minMs: 500, maxMs: 30_000 });
 * for (;;) {
 *   try { await work(); b.reset(); } catch { await clock.sleep(b.next()); }
 * }
 * ```
 */
export class Backoff {
  #attempt = 0;
  readonly #options: BackoffOptions;

  constructor(options: BackoffOptions = {}) {
    backoffDelay(0, options); // validates the options once
    this.#options = options;
  }

  /** Retries counted since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The nominal (un-jittered) delay the next `next()` is drawn from. */
  get nominalMs(): number {
    return backoffDelay(this.#attempt, { ...this.#options, jitter: 0 });
  }

  /** The jittered delay before the next attempt; advances the attempt count. */
  next(): number {
    return backoffDelay(this.#attempt++, this.#options);
  }

  /** Back to the first delay (after a success). */
  reset(): void {
    this.#attempt = 0;
  }
}
