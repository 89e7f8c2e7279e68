/**
 * The daemon side of host-function calls from a sandbox host process.
 *
 * @module
 */
import { runHostFunction } from "./host_functions.ts";
import type { PluginEntry } from "./pool.ts";
import type { HostProcess } from "./process/host_process.ts";
import type { FromHost } from "./protocol.ts";
import { serveFs, WASI_FS_FN } from "./wasi/fs_remote.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Answers a plugin's host-function request on the daemon side: WASI file operations on the
 * agent's descriptor table, ABI host functions through {@linkcode runHostFunction}, bounded
 * by the call's deadline (then a `timeout` reply, and the host work is aborted) and by the
 * reply budget the host process sent (then only the size goes back: `memory_limit` there).
 */
export async function answerHost(
  entry: PluginEntry | undefined,
  m: Extract<FromHost, { t: "host" }>,
  input: Uint8Array,
  proc: HostProcess,
): Promise<void> {
  const op = entry?.op;
  if (!entry || !op) {
    const msg = { error: { code: "unavailable", message: "Plugin is closed" } };
    proc.send({ t: "reply", seq: m.seq }, encoder.encode(JSON.stringify(msg)));
    return;
  }
  if (m.fn === WASI_FS_FN) {
    // a WASI file operation: the grant-checked file access happens here, synchronously
    const bytes = entry.fs
      ? serveFs(entry.fs, input)
      : encoder.encode(JSON.stringify({ error: { code: "capability_denied" } }));
    if (bytes.length > m.replyMax) proc.send({ t: "reply", seq: m.seq, tooLarge: bytes.length });
    else proc.send({ t: "reply", seq: m.seq }, bytes);
    return;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((res) => {
    timer = setTimeout(() => res(null), Math.max(0, op.deadline - Date.now()));
  });
  op.abort ??= new AbortController();
  const ctx = { ...entry.ctx, deadline: op.deadline, signal: op.abort.signal };
  const reply = await Promise.race([runHostFunction(ctx, m.fn, decoder.decode(input)), late]);
  clearTimeout(timer);
  // host work that stopped itself at the deadline (exec kills its child then) races the timer:
  // either way the call is out of time
  if (reply === null || Date.now() >= op.deadline) {
    op.abort?.abort(); // stop the host work (e.g. a child process)
    proc.send({ t: "reply", seq: m.seq, timeout: true });
    return;
  }
  const bytes = encoder.encode(reply);
  if (bytes.length > m.replyMax) proc.send({ t: "reply", seq: m.seq, tooLarge: bytes.length });
  else proc.send({ t: "reply", seq: m.seq }, bytes);
}
