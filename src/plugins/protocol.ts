/**
 * Messages between the sandbox (main thread) and its runtime threads, and the layout of
 * the SharedArrayBuffer through which the main thread answers host calls while the
 * runtime thread blocks in `Atomics.wait`.
 *
 * @module
 */
import type { SandboxErrorCode } from "./types.ts";

/** Name of the exported fuel counter global (i64, mutable) injected at load. */
export const FUEL_GLOBAL = "__mr_fuel";

/** Reply buffer: Int32 slots then data. */
export const SAB_STATE = 0; // 0 = waiting, 1 = reply written
export const SAB_SEQ = 1; // sequence number of the written reply
export const SAB_LEN = 2; // byte length of the reply
export const SAB_WAITING = 3; // sequence number the runtime thread waits for (0 = none)
export const SAB_HEADER = 16;
/** Largest host-call reply (bigger replies become an `io_error` object). */
export const SAB_DATA_BYTES = 4 * 1024 * 1024;

/** Main → runtime thread. */
export type ToWorker =
  | { t: "init"; sab: SharedArrayBuffer }
  | {
    t: "load";
    id: number;
    key: number;
    name: string;
    bytes: Uint8Array;
    hostFunctions: string[];
    maxPages: number;
  }
  | {
    t: "call";
    id: number;
    key: number;
    fn: string;
    input: Uint8Array | null;
    fuel: number;
    deadline: number;
    outputMax: number;
    memBytes: number;
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
