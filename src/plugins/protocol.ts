/**
 * Messages between the sandbox (in the daemon) and its sandbox host processes. Each
 * message is one frame (see `process/frames.ts`): a JSON header and an optional binary
 * body (module bytes, call input/output, host-function input/reply).
 *
 * @module
 */
import type { GuestSetup } from "./kernel/guest.ts";
import type { SandboxErrorCode } from "./types.ts";

/** Name of the exported fuel counter global (i32, mutable; holds a chunk of the budget) injected at load. */
export const FUEL_GLOBAL = "__mr_fuel";

/** Exported function that zeroes the fuel counter (the runtime then refills it). */
export const FUEL_RESET = "__mr_fuel_reset";

/** Name of the exported global (i32) holding the last export's return code. */
export const RC_GLOBAL = "__mr_rc";

/** Largest frame either side accepts (a module, an input, an output or a host reply). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Per-call limits the host process enforces (see docs/sandbox.md "Memory"). */
export interface CallLimits {
  /** Fuel units for the call. */
  fuel: number;
  /** Epoch ms at which the call stops with `timeout`. */
  deadline: number;
  /** `memory_mb` in bytes: linear memory + tables + kernel allocations + host replies. */
  memBytes: number;
  /** Largest output. */
  outputMax: number;
  /** Host-function calls allowed in one call. */
  hostCallsMax: number;
  /** Host-reply bytes allowed in one call. */
  hostBytesMax: number;
}

/** Daemon → host process. */
export type ToHost =
  | {
    t: "load";
    id: number;
    key: number;
    name: string;
    hostFunctions: string[];
    maxPages: number;
    /** Bytes reserved for the module's tables at their capped maximum. */
    tableBytes: number;
    limits: CallLimits;
    /** Extism config and WASI of the guest. */
    guest: GuestSetup;
  } // body: instrumented module
  | { t: "unload"; id: number; key: number }
  | { t: "call"; id: number; key: number; fn: string; limits: CallLimits } // body: input
  | {
    t: "reply";
    seq: number;
    /** The call's deadline passed while the host function ran. */
    timeout?: boolean;
    /** The reply was larger than the call's remaining budget (its size in bytes). */
    tooLarge?: number;
  }; // body: reply JSON

/** A stop or failure reported by the host process. */
export interface HostFailure {
  code: SandboxErrorCode | "plugin_error" | "internal";
  message: string;
}

/** Host process → daemon. */
export type FromHost =
  | { t: "ready"; pid: number }
  | { t: "done"; id: number; exports?: string[]; failure?: HostFailure } // body: output
  | {
    t: "host";
    seq: number;
    key: number;
    fn: string;
    /** Largest reply the call can still take (host-reply and memory budget). */
    replyMax: number;
  } // body: input
  | {
    t: "log";
    key: number;
    /** A log level, or `stdout` (a WASI stdout line for `LoadOptions.stdout`). */
    level: string;
    msg: string;
    fields?: Record<string, unknown>;
  };
