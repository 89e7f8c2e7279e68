/**
 * Result classification in the sandbox host process: what stopped a call (fuel, deadline,
 * memory, trap) or whether the plugin itself reported an error.
 *
 * @module
 */
import type { HostFailure } from "../protocol.ts";

/** A stop raised inside a host/kernel function, carried out through the wasm frames. */
export class Stop extends Error {
  override name = "Stop";
  constructor(readonly failure: HostFailure) {
    super(failure.message);
  }
}

/** What the classifier needs to know about the call that failed. */
export interface StopFacts {
  timedOut: boolean;
  fuelOut: boolean;
  /** Current linear memory size and its cap. */
  memoryBytes: number;
  maxPages: number;
}

/**
 * Maps an exception out of `plugin.call` to a failure; `broken` means the instance may be
 * inconsistent and must be re-instantiated.
 */
export function classify(
  facts: StopFacts,
  err: unknown,
  fn: string,
): { failure: HostFailure; broken: boolean } {
  if (err instanceof Stop) return { failure: err.failure, broken: true };
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof RangeError && /call stack/i.test(msg)) {
    return { failure: { code: "trap", message: `Stack overflow in "${fn}"` }, broken: true };
  }
  if (err instanceof WebAssembly.RuntimeError) {
    if (facts.timedOut) {
      return {
        failure: { code: "timeout", message: `Call to "${fn}" exceeded its deadline` },
        broken: true,
      };
    }
    if (facts.fuelOut) {
      return {
        failure: { code: "fuel_exhausted", message: `Call to "${fn}" ran out of fuel` },
        broken: true,
      };
    }
    if (facts.memoryBytes >= facts.maxPages * 65536) {
      return {
        failure: {
          code: "memory_limit",
          message: `Call to "${fn}" trapped at the memory cap (${facts.maxPages} pages): ${msg}`,
        },
        broken: true,
      };
    }
    return { failure: { code: "trap", message: `Call to "${fn}" trapped: ${msg}` }, broken: true };
  }
  if (err instanceof RangeError && /allocat|memory/i.test(msg)) {
    return {
      failure: { code: "memory_limit", message: `Call to "${fn}" could not allocate: ${msg}` },
      broken: true,
    };
  }
  if (msg.startsWith("Plugin-originated error: ")) {
    return {
      failure: { code: "plugin_error", message: msg.slice("Plugin-originated error: ".length) },
      broken: false,
    };
  }
  return { failure: { code: "trap", message: `Call to "${fn}" failed: ${msg}` }, broken: true };
}
