/**
 * What the sandbox keeps per plugin and per pool slot, and the mapping of host-process
 * results and exits to the errors callers get.
 *
 * @module
 */
import type { Limits } from "../desired/spec.ts";
import type { HostCallContext } from "./host_functions.ts";
import type { GuestSetup } from "./kernel/guest.ts";
import type { LocalFs } from "./wasi/fs_ops.ts";
import type { ExitCause, HostProcess } from "./process/host_process.ts";
import type { CallLimits, HostFailure } from "./protocol.ts";
import { PluginError, SandboxError } from "./types.ts";

/** Host-function calls one call may make (a stop with `fuel_exhausted` beyond). */
export const HOST_CALLS_MAX = 10_000;
/** Host-reply bytes one call may receive (a stop with `memory_limit` beyond). */
export const HOST_REPLY_BYTES_MAX = 16 * 1024 * 1024;

/** One loaded plugin, as the sandbox tracks it across process restarts. */
export interface PluginEntry {
  key: number;
  name: string;
  sha256: string;
  ctx: HostCallContext;
  /** Instrumented module, kept for reloads. */
  bytes: Uint8Array;
  hostFunctions: string[];
  maxPages: number;
  tableBytes: number;
  limits: Limits;
  slot: Slot;
  /** Loaded in the slot's current process. */
  loaded: boolean;
  /** Deadline and abort of the operation in flight (host calls use them; abort is lazy). */
  op: { deadline: number; abort: AbortController | null } | null;
  /** Extism config and WASI setup sent with each load. */
  guest: GuestSetup;
  /** The guest's files (WASI), opened here under the grant; new with each load. */
  fs: LocalFs | null;
  /** WASI stdout lines go here instead of the log (`LoadOptions.stdout`). */
  stdout?: (line: string) => void;
}

/** A place in the pool: its current process and the queue of operations on it. */
export class Slot {
  proc: HostProcess | null = null;
  /** Started while an operation ran past its deadline: the next process if this one is killed. */
  standby: HostProcess | null = null;
  standbyTimer: ReturnType<typeof setTimeout> | undefined;
  starting: Promise<HostProcess> | null = null;
  restarts = 0;
  readonly entries = new Set<PluginEntry>();
  #tail: Promise<unknown> = Promise.resolve();

  /** Runs `fn` when the slot's previous operation has finished (a process runs one at a time). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }
}

/** A failure from the host process as the error the caller gets. */
export function toError(f: HostFailure): Error {
  if (f.code === "plugin_error") return new PluginError(f.message);
  if (f.code === "internal") return new SandboxError("trap", f.message);
  return new SandboxError(f.code, f.message);
}

/** The stop a process exit is reported as for the agent it was running. */
export const STOP_OF: Record<ExitCause, "timeout" | "memory_limit" | "trap"> = {
  deadline: "timeout",
  memory: "memory_limit",
  crash: "trap",
  closed: "trap",
};

/** The limits the host process enforces for one call (or load) under `limits`. */
export function callLimits(limits: Limits, deadline: number): CallLimits {
  return {
    fuel: limits.fuel,
    deadline,
    memBytes: limits.memory_mb * 1024 * 1024,
    outputMax: limits.output_max_bytes,
    hostCallsMax: HOST_CALLS_MAX,
    hostBytesMax: HOST_REPLY_BYTES_MAX,
  };
}
