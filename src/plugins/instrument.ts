/**
 * Load-time instrumentation of agent modules: fuel metering (every instruction is charged,
 * by basic block, before it runs; bulk memory/table operations by their length), the
 * start function and `_initialize` moved under the first call's limits, the return-code
 * wrapper, and the memory (optionally table) cap. A purpose-built streaming rewriter
 * (src/plugins/instrument/), no dependency: see docs/sandbox.md.
 *
 * @module
 */
import { WasmFormatError } from "./instrument/bytes.ts";
import { OverLimitError, rewriteModule } from "./instrument/module.ts";
import { SandboxError } from "./types.ts";

export {
  BRANCH_HINT_SECTION,
  FUEL_LEFT,
  INIT_EXPORTS,
  TICK_MODULE,
  TICK_NAME,
} from "./instrument/module.ts";
export { FUEL_RESET, RC_GLOBAL } from "./protocol.ts";

/**
 * Version of the instrumentation scheme; part of the cache key (instrument_cache.ts), so a
 * change to the rewrite must change it.
 */
export const INSTRUMENTER_VERSION = "mr-instrument-9";

/** Options for {@linkcode instrumentModule}. */
export interface InstrumentOptions {
  /** Linear memory cap in 64 KiB pages. */
  maxPages: number;
  /** Cap on every table's entries (initial above it: `memory_limit`). @default {undefined} no cap */
  maxTableEntries?: number;
}

/**
 * Returns an instrumented copy of `wasm`, validated with `WebAssembly.validate`. Throws
 * `SandboxError("invalid_module")` naming the problem (and its byte offset) when the
 * module cannot be parsed or uses an unsupported feature (threads/atomics, exceptions,
 * GC, multi-memory, memory64, imported memory), and `SandboxError("memory_limit")` when
 * its initial memory (or a table) already exceeds the cap.
 */
export function instrumentModule(wasm: Uint8Array, options: InstrumentOptions): Uint8Array {
  let out: Uint8Array;
  try {
    out = rewriteModule(wasm, {
      maxPages: options.maxPages,
      maxTableEntries: options.maxTableEntries,
    });
  } catch (err) {
    if (err instanceof OverLimitError) {
      throw new SandboxError("memory_limit", err.message, { cause: err });
    }
    if (err instanceof WasmFormatError) {
      throw new SandboxError(
        "invalid_module",
        `Module cannot be instrumented: ${err.message} (at byte 0x${err.offset.toString(16)})`,
        { cause: err },
      );
    }
    throw err;
  }
  // The rewrite trusts index spaces: an invalid input naming a global or function past its
  // own (e.g. `global.set` of what becomes the fuel counter) would become valid after it.
  if (!WebAssembly.validate(wasm as Uint8Array<ArrayBuffer>)) {
    throw new SandboxError("invalid_module", `Invalid WebAssembly module${engineError(wasm)}`);
  }
  if (!WebAssembly.validate(out as Uint8Array<ArrayBuffer>)) {
    throw new SandboxError(
      "invalid_module",
      `Module does not validate after instrumentation${engineError(out)}`,
    );
  }
  return out;
}

/** The engine's reason why `wasm` does not compile, as ": reason" (or ""). */
function engineError(wasm: Uint8Array): string {
  try {
    new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>);
  } catch (e) {
    return `: ${e instanceof Error ? e.message : e}`;
  }
  return "";
}
