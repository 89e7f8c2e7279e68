/**
 * Runs module instrumentation in a worker thread that is terminated after
 * {@linkcode INSTRUMENT_IDLE_MS} without work, so binaryen's memory (~90 MB RSS) is only
 * held while modules are being loaded. Concurrent loads share the worker.
 *
 * @module
 */
import type { InstrumentOptions } from "./instrument.ts";
import { SandboxError, type SandboxErrorCode } from "./types.ts";

/** Idle time after which the instrumentation worker is terminated. */
export const INSTRUMENT_IDLE_MS = 30_000;

interface Reply {
  id: number;
  wasm?: Uint8Array;
  error?: { code: SandboxErrorCode; message: string };
}

let worker: Worker | null = null;
let nextId = 1;
let idleTimer: ReturnType<typeof setTimeout> | undefined;
const pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();

function stopWorker(): void {
  worker?.terminate();
  worker = null;
  for (const p of pending.values()) p.reject(new Error("instrumentation worker stopped"));
  pending.clear();
}

function getWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(new URL("./instrument_worker.ts", import.meta.url), { type: "module" });
  w.onmessage = (ev: MessageEvent<Reply>) => {
    const p = pending.get(ev.data.id);
    if (!p) return;
    pending.delete(ev.data.id);
    if (ev.data.error) p.reject(new SandboxError(ev.data.error.code, ev.data.error.message));
    else p.resolve(ev.data.wasm!);
    scheduleIdle();
  };
  w.onerror = (ev) => {
    ev.preventDefault();
    const err = new Error(`instrumentation worker crashed: ${ev.message}`);
    for (const p of pending.values()) p.reject(err);
    pending.clear();
    worker?.terminate();
    worker = null;
  };
  worker = w;
  return w;
}

function scheduleIdle(): void {
  clearTimeout(idleTimer);
  if (pending.size > 0) return;
  idleTimer = setTimeout(stopWorker, INSTRUMENT_IDLE_MS);
  // never keep the process alive just for the idle timer
  Deno.unrefTimer(idleTimer as unknown as number);
}

/** Instruments `wasm` off the main thread (see `instrumentModule`). */
export function instrumentOffThread(
  wasm: Uint8Array,
  options: InstrumentOptions,
): Promise<Uint8Array> {
  clearTimeout(idleTimer);
  const w = getWorker();
  const id = nextId++;
  const copy = wasm.slice();
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.postMessage({ id, wasm: copy, maxPages: options.maxPages, fuel: options.fuel }, [
      copy.buffer,
    ]);
  });
}

/** Terminates the worker now (tests, shutdown). */
export function stopInstrumentWorker(): void {
  clearTimeout(idleTimer);
  stopWorker();
}
