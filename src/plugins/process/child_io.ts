/**
 * Synchronous frame I/O of the sandbox host process on its stdin/stdout: the process
 * blocks in `read(2)` while idle and while a host function runs in the daemon, so a
 * plugin's synchronous host call needs no second thread. Reads go through one buffer, so
 * a small frame costs one `read(2)`.
 *
 * @module
 */
import type { FromHost, ToHost } from "../protocol.ts";
import { decodePayload, encodeFrame, type Frame, FrameError } from "./frames.ts";
import { MAX_FRAME_BYTES } from "../protocol.ts";

let buf = new Uint8Array(64 * 1024);
let start = 0;
let end = 0;

/** Reads until at least `n` bytes are buffered; false at end of input. */
function fill(n: number): boolean {
  if (start + n > buf.length) {
    const next = n > buf.length ? new Uint8Array(Math.max(n, buf.length * 2)) : buf;
    next.set(buf.subarray(start, end), 0);
    buf = next;
    end -= start;
    start = 0;
  }
  while (end - start < n) {
    const got = Deno.stdin.readSync(buf.subarray(end));
    if (got === null) return false;
    end += got;
  }
  return true;
}

/** Blocks until the next frame from the daemon; null when the daemon closed the pipe. */
export function readFrame(): Frame<ToHost> | null {
  if (!fill(4)) return null;
  const total = new DataView(buf.buffer, start, 4).getUint32(0, true);
  if (total > MAX_FRAME_BYTES) throw new FrameError(`Frame of ${total} bytes exceeds the limit`);
  if (!fill(4 + total)) return null;
  const frame = decodePayload<ToHost>(buf.subarray(start + 4, start + 4 + total));
  start += 4 + total;
  if (start === end) start = end = 0;
  return frame;
}

/** Writes one frame to the daemon (blocking until the pipe took all of it). */
export function writeFrame(header: FromHost, body?: Uint8Array | null): void {
  const frame = encodeFrame(header, body);
  let off = 0;
  while (off < frame.length) off += Deno.stdout.writeSync(frame.subarray(off));
}
