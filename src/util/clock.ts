/**
 * An injected clock: wall time, monotonic time and timers behind one interface, so retry,
 * lease and TTL logic can be driven by {@linkcode FakeClock} in tests instead of sleeps.
 *
 * Wall time (`now`) is for timestamps and for comparing with times that come from elsewhere
 * (JWT expiry, CloudEvent `time`). Durations measured on this host — leases, timeouts,
 * "how long since" — use `monotonic`, which does not move when the wall clock is set.
 *
 * @module
 */

/** A timer handle returned by {@linkcode Clock.setTimeout} (opaque). */
export type TimerHandle = ReturnType<typeof globalThis.setTimeout> | number;

/** The clock a component is given. */
export interface Clock {
  /** Wall-clock time in ms since the epoch (may jump when the host's clock is set). */
  now(): number;
  /** Monotonic time in ms from an arbitrary origin; never goes backwards. */
  monotonic(): number;
  /** Runs `fn` once after `ms` (monotonic) milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; `undefined` and spent handles are ignored. */
  clearTimeout(handle: TimerHandle | undefined): void;
  /**
   * Resolves after `ms`; rejects with the signal's reason when `signal` aborts first.
   *
   * @example
   * ```ts
   * await systemClock.sleep(250);
   * ```
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

function sleepWith(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimeout(t);
      reject(signal!.reason);
    };
    const t = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The host's clock: `Date.now`, `performance.now` and the global timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (h) => clearTimeout(h as number),
  sleep(ms, signal) {
    return sleepWith(systemClock, ms, signal);
  },
};

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock that moves only when told. `tick` advances both wall and monotonic time and fires
 * due timers in order (timers set by a callback fire in the same tick if they fall due);
 * `jumpWall` moves only the wall clock, as an operator or NTP setting the time would.
 *
 * @example
 * ```ts
 * const clock = new FakeClock({ now: 1_700_000_000_000 });
 * let fired = false;
 * clock.setTimeout(() => fired = true, 1000);
 * await clock.tickAsync(1000); // fired === true
 * ```
 */
export class FakeClock implements Clock {
  #wall: number;
  #mono: number;
  #timers: FakeTimer[] = [];
  #nextId = 1;

  /** @param options.now initial wall time (ms epoch) @default {0} */
  constructor(options: { now?: number } = {}) {
    this.#wall = options.now ?? 0;
    this.#mono = 0;
  }

  now(): number {
    return this.#wall;
  }

  monotonic(): number {
    return this.#mono;
  }

  setTimeout(fn: () => void, ms: number): number {
    const id = this.#nextId++;
    this.#timers.push({ id, at: this.#mono + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle === undefined) return;
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, ms, signal);
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves the wall clock by `ms` (negative goes back); monotonic time and timers stay. */
  jumpWall(ms: number): void {
    this.#wall += ms;
  }

  /** Advances time by `ms`, firing due timers synchronously in order. */
  tick(ms: number): void {
    const end = this.#mono + ms;
    for (let t = this.#due(end); t; t = this.#due(end)) this.#fire(t);
    this.#advanceTo(end);
  }

  /**
   * Like `tick`, but lets promise callbacks run after each timer, so async code that awaits
   * a sleep and then schedules the next one progresses as it would in real time.
   */
  async tickAsync(ms: number): Promise<void> {
    const end = this.#mono + ms;
    await flush();
    for (let t = this.#due(end); t; t = this.#due(end)) {
      this.#fire(t);
      await flush();
    }
    this.#advanceTo(end);
    await flush();
  }

  /** Advances to the next timer and fires it; returns false when none is pending. */
  async next(): Promise<boolean> {
    const t = this.#due(Infinity);
    if (!t) return false;
    this.#fire(t);
    await flush();
    return true;
  }

  #due(end: number): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers) {
      if (t.at <= end && (!best || t.at < best.at || (t.at === best.at && t.id < best.id))) {
        best = t;
      }
    }
    return best;
  }

  #fire(t: FakeTimer): void {
    this.#timers = this.#timers.filter((x) => x !== t);
    this.#advanceTo(t.at);
    t.fn();
  }

  #advanceTo(mono: number): void {
    if (mono <= this.#mono) return;
    this.#wall += mono - this.#mono;
    this.#mono = mono;
  }
}

async function flush(): Promise<void> {
  // several turns: a chain of awaits needs one microtask each
  for (let i = 0; i < 10; i++) await Promise.resolve();
}
