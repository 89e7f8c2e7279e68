/**
 * Worker that runs {@linkcode instrumentModule}: binaryen costs ~90 MB of RSS once
 * loaded, so it lives in a short-lived thread that is terminated when idle (see
 * `instrumentOffThread` in instrument_client.ts) instead of in the daemon's main isolate.
 *
 * @module
 */
import { SandboxError } from "./types.ts";

interface WorkerScope {
  onmessage: ((ev: MessageEvent<Request>) => void | Promise<void>) | null;
  postMessage(msg: unknown, transfer?: Transferable[]): void;
}
const scope = globalThis as unknown as WorkerScope;

interface Request {
  id: number;
  wasm: Uint8Array;
  maxPages: number;
  fuel?: boolean;
}

// binaryen is loaded on the first request (a static import with its top-level await
// delays the handler past the first message)
let instrument: typeof import("./instrument.ts") | null = null;

scope.onmessage = async (ev: MessageEvent<Request>) => {
  const { id, wasm, maxPages, fuel } = ev.data;
  try {
    instrument ??= await import("./instrument.ts");
    const out = instrument.instrumentModule(wasm, {
      maxPages,
      ...(fuel === false ? { fuel } : {}),
    });
    scope.postMessage({ id, wasm: out }, [out.buffer as ArrayBuffer]);
  } catch (err) {
    const code = err instanceof SandboxError ? err.code : "invalid_module";
    scope.postMessage({ id, error: { code, message: (err as Error)?.message ?? String(err) } });
  }
};
