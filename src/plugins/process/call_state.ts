/**
 * Per-call accounting in the sandbox host process (memory_mb over linear memory, tables,
 * kernel allocations and host replies; the host-call and host-reply caps) and the
 * synchronous host-call path: a request frame to the daemon, then a blocking read of its
 * reply.
 *
 * @module
 */
import type { Plugin } from "@extism/extism";
import type { CallLimits } from "../protocol.ts";
import type { GuestEnv } from "../kernel/guest.ts";
import { Stop } from "./classify.ts";
import { readFrame, writeFrame } from "./child_io.ts";

/** Per-call state read by host/kernel functions. */
export interface CallState {
  limits: CallLimits;
  /** Kernel allocations and host replies of this call (bytes, never given back by `free`). */
  allocated: number;
  hostCalls: number;
  hostBytes: number;
  /** Fuel not yet handed to the module's counter. */
  fuelLeft: number;
  timedOut: boolean;
  fuelOut: boolean;
}

export interface Hosted {
  key: number;
  name: string;
  module: WebAssembly.Module;
  hostFunctions: string[];
  maxPages: number;
  tableBytes: number;
  plugin: Plugin | null;
  /** Zeroes the module's fuel counter. */
  fuel: () => void;
  rc: WebAssembly.Global | null;
  memory: WebAssembly.Memory | null;
  call: CallState;
  /** Extism kernel state (config, vars) and WASI of this plugin. */
  guest: GuestEnv;
}

let hostSeq = 0;

export function callState(limits: CallLimits): CallState {
  return {
    limits,
    allocated: 0,
    hostCalls: 0,
    hostBytes: 0,
    fuelLeft: limits.fuel,
    timedOut: false,
    fuelOut: false,
  };
}

export function memoryUsed(h: Hosted): number {
  return (h.memory?.buffer.byteLength ?? 0) + h.tableBytes + h.call.allocated;
}

/** Counts `bytes` of kernel/host memory against `memory_mb`; throws `memory_limit` past it. */
export function charge(h: Hosted, bytes: number, what: string): void {
  h.call.allocated += bytes;
  const used = memoryUsed(h);
  if (used > h.call.limits.memBytes) {
    throw new Stop({
      code: "memory_limit",
      message: `${what} of ${bytes} bytes exceeds memory_mb (${h.call.limits.memBytes} bytes: ` +
        `linear ${h.memory?.buffer.byteLength ?? 0} + tables ${h.tableBytes} + ` +
        `allocations and host replies ${h.call.allocated})`,
    });
  }
}

/** Sends `fn(input)` to the daemon and blocks until its reply frame arrives. */
export function hostCall(h: Hosted, fn: string, input: Uint8Array): Uint8Array {
  const c = h.call;
  if (++c.hostCalls > c.limits.hostCallsMax) {
    throw new Stop({
      code: "fuel_exhausted",
      message: `More than ${c.limits.hostCallsMax} host-function calls in one call`,
    });
  }
  if (Date.now() >= c.limits.deadline) {
    throw new Stop({ code: "timeout", message: `Call exceeded its deadline before "${fn}"` });
  }
  const seq = ++hostSeq;
  const replyMax = Math.max(
    0,
    Math.min(c.limits.hostBytesMax - c.hostBytes, c.limits.memBytes - memoryUsed(h)),
  );
  writeFrame({ t: "host", seq, key: h.key, fn, replyMax }, input);
  for (;;) {
    const f = readFrame();
    if (!f) Deno.exit(0); // the daemon is gone
    const r = f.header;
    if (r.t !== "reply" || r.seq !== seq) continue;
    // a reply that comes back after the deadline (the host work may have ended itself at the
    // deadline, e.g. a killed child) still means the call ran out of time
    if (r.timeout || Date.now() >= c.limits.deadline) {
      throw new Stop({
        code: "timeout",
        message: `Call exceeded its deadline while waiting for host function "${fn}"`,
      });
    }
    if (r.tooLarge !== undefined) {
      const hostCap = c.limits.hostBytesMax - c.hostBytes <= replyMax;
      throw new Stop({
        code: "memory_limit",
        message: `Reply of "${fn}" (${r.tooLarge} bytes) exceeds the call's remaining ${
          hostCap ? "host-reply budget" : "memory_mb budget"
        } (${replyMax} bytes)`,
      });
    }
    c.hostBytes += f.body.length;
    charge(h, f.body.length, `Reply of "${fn}"`);
    return f.body;
  }
}
