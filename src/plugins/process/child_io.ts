/**
 * Synchronous frame I/O of the sandbox host process on its stdin/stdout: the process
 * blocks in `read(2)` while idle and while a host function runs in the daemon, so a
 * plugin's synchronous host call needs no second thread.
 *
 * @module
 */
import type { FromHost, ToHost } from "../protocol.ts";
import { decodePayload, encodeFrame, type Frame, FrameError } from "./frames.ts";
import { MAX_FRAME_BYTES } from "../protocol.ts";

const head = new Uint8Array(4);
const headView = new DataView(head.buffer);

function readFull(buf: Uint8Array): boolean {
  let off = 0;
  while (off < buf.length) {
    const n = Deno.stdin.readSync(buf.subarray(off));
    if (n === null) return false;
    off += n;
  }
  return true;
}

/** Blocks until the next frame from the daemon; null when the daemon closed the pipe. */
export function readFrame(): Frame<ToHost> | null {
  if (!readFull(head)) return null;
  const total = headView.getUint32(0, true);
  if (total > MAX_FRAME_BYTES) throw new FrameError(`Frame of ${total} bytes exceeds the limit`);
  const payload = new Uint8Array(total);
  if (!readFull(payload)) return null;
  return decodePayload<ToHost>(payload);
}

/** Writes one frame to the daemon (blocking until the pipe took all of it). */
export function writeFrame(header: FromHost, body?: Uint8Array | null): void {
  const frame = encodeFrame(header, body);
  let off = 0;
  while (off < frame.length) off += Deno.stdout.writeSync(frame.subarray(off));
}
