/**
 * A process-level guard for the long-running daemon: a network error that escapes every
 * handler (the Node-compat socket under the NATS client can emit `ECONNRESET` after the
 * server drops a connection — a revoked user, a restart — when nothing listens any more)
 * must not take the daemon down. Such errors are logged and swallowed; the connection
 * loop reconnects as usual. Any other uncaught error is logged and still ends the process
 * (the service manager restarts it), because the state it leaves behind is unknown.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";

/** `code`s of socket errors that only mean "this connection is gone". */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "ENOTCONN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
]);

/** Whether an uncaught value is a transient socket error. */
export function isNetworkError(err: unknown): boolean {
  if (!err || typeof err !== "object") return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && NETWORK_ERROR_CODES.has(code)) return true;
  if (err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe) {
    return true;
  }
  if (err instanceof Deno.errors.ConnectionAborted) return true;
  return false;
}

let installed: (() => void) | null = null;

/**
 * Installs the guard once per process (later calls return the same remover). Returns a
 * function that removes it.
 */
export function installNetworkErrorGuard(log: Logger): () => void {
  if (installed) return installed;
  // the same decision for a thrown error and for an unawaited rejection
  const handle = (e: Event, err: unknown, where: string) => {
    if (isNetworkError(err)) {
      e.preventDefault();
      log.warn(`network error ${where} (ignored)`, {
        error: String((err as Error)?.message ?? err),
        code: (err as { code?: string })?.code ?? null,
      });
    } else {
      log.error(
        `${where === "outside any handler" ? "uncaught error" : "unhandled rejection"}; exiting`,
        {
          error: String((err as Error)?.stack ?? err),
        },
      );
    }
  };
  const onError = (e: ErrorEvent) => handle(e, e.error ?? e.message, "outside any handler");
  const onRejection = (e: PromiseRejectionEvent) => handle(e, e.reason, "in an unawaited promise");
  globalThis.addEventListener("error", onError);
  globalThis.addEventListener("unhandledrejection", onRejection);
  installed = () => {
    globalThis.removeEventListener("error", onError);
    globalThis.removeEventListener("unhandledrejection", onRejection);
    installed = null;
  };
  return installed;
}
