/**
 * Reads a byte stream as text, keeping at most {@linkcode HOST_OUTPUT_CAP} bytes (the rest
 * is read and discarded, so the producer never blocks).
 *
 * @module
 */
import { HOST_OUTPUT_CAP } from "./limits.ts";

/** The first {@linkcode HOST_OUTPUT_CAP} bytes of `stream`, decoded as UTF-8. */
export async function readCapped(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  if (!stream) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (total < HOST_OUTPUT_CAP) chunks.push(value.subarray(0, HOST_OUTPUT_CAP - total));
      total += value.length;
    }
  } finally {
    reader.releaseLock();
  }
  const buf = new Uint8Array(Math.min(total, HOST_OUTPUT_CAP));
  let off = 0;
  for (const c of chunks) {
    buf.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(buf);
}
