/**
 * Messages between the sandbox (main thread) and its runtime threads, and the layout of
 * the SharedArrayBuffer through which the main thread answers host calls while the
 * runtime thread blocks in `Atomics.wait`.
 *
 * @module
 */
import type { SandboxErrorCode } from "./types.ts";

/** Name of the exported fuel counter global (i32, mutable; holds a chunk of the budget) injected at load. */
export const FUEL_GLOBAL = "__mr_fuel";

/** Exported function that zeroes the fuel counter (the runtime then refills it). */
export const FUEL_RESET = "__mr_fuel_reset";

/** Name of the exported global (i32) holding the last export's return code. */
export const RC_GLOBAL = "__mr_rc";

/** Reply buffer: Int32 slots then data. */
export const SAB_STATE = 0; // 0 = waiting, 1 = reply written
export const SAB_SEQ = 1; // sequence number of the written reply
export const SAB_LEN = 2; // byte length of the reply
export const SAB_WAITING = 3; // sequence number the runtime thread waits for (0 = none)
export const SAB_HEADER = 16;
/** Largest host-call reply (bigger replies become an `io_error` object). */
export const SAB_DATA_BYTES = 4 * 1024 * 1024;

/**
 * Call mailbox (a second SharedArrayBuffer): the idle runtime thread blocks in
 * `Atomics.wait` on {@linkcode MAIL_STATE}; the main thread writes a call and flips the
 * state to {@linkcode MAIL_CALL}; the runtime thread writes the result and flips it to
 * {@linkcode MAIL_DONE}, which the main thread awaits with `Atomics.waitAsync`. Loads and
 * unloads travel by `postMessage` after a {@linkcode MAIL_KICK} makes the thread return to
 * its event loop. Data area: a JSON header then raw bytes (input or output).
 */
export const MAIL_STATE = 0;
export const MAIL_HLEN = 1;
export const MAIL_BLEN = 2; // -1 = no body
export const MAIL_IDLE = 0;
export const MAIL_CALL = 1;
export const MAIL_DONE = 2;
export const MAIL_KICK = 3;
export const MAIL_HEADER = 16;
/** Largest call input/output carried through the mailbox. */
export const MAIL_DATA_BYTES = 16 * 1024 * 1024;

/** A call as written into the mailbox header. */
export interface CallHeader {
  key: number;
  fn: string;
  fuel: number;
  deadline: number;
  outputMax: number;
  memBytes: number;
}

/** A call result header: `failure` absent means success with the body as output. */
export interface ResultHeader {
  failure?: WorkerFailure;
}

/** Main → runtime thread. */
export type ToWorker =
  | { t: "init"; sab: SharedArrayBuffer; mail: SharedArrayBuffer }
  | {
    t: "load";
    id: number;
    key: number;
    name: string;
    bytes: Uint8Array;
    hostFunctions: string[];
    maxPages: number;
  }
  | { t: "unload"; id: number; key: number };

/** A stop or failure reported by a runtime thread. */
export interface WorkerFailure {
  code: SandboxErrorCode | "plugin_error" | "internal";
  message: string;
}

/** Runtime thread → main. */
export type FromWorker =
  | { t: "done"; id: number; output?: Uint8Array; exports?: string[] }
  | { t: "fail"; id: number; failure: WorkerFailure }
  | { t: "host"; seq: number; key: number; fn: string; input: string }
  | { t: "log"; key: number; level: string; msg: string; fields?: Record<string, unknown> };
