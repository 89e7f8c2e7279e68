/**
 * Frames on the sandbox host process's stdin/stdout: `u32 total` (little endian, bytes
 * after this field), `u32 header length`, the header (UTF-8 JSON), then the body.
 *
 * @module
 */
import { MAX_FRAME_BYTES } from "../protocol.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A malformed or oversized frame: the stream cannot be trusted any more. */
export class FrameError extends Error {
  override name = "FrameError";
}

/** One decoded frame. */
export interface Frame<T> {
  header: T;
  body: Uint8Array;
}

/** Encodes `header` and `body` into one frame. */
export function encodeFrame(header: unknown, body?: Uint8Array | null): Uint8Array {
  const h = encoder.encode(JSON.stringify(header));
  const blen = body?.length ?? 0;
  const total = 4 + h.length + blen;
  if (total > MAX_FRAME_BYTES) throw new FrameError(`Frame of ${total} bytes exceeds the limit`);
  const out = new Uint8Array(4 + total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, total, true);
  dv.setUint32(4, h.length, true);
  out.set(h, 8);
  if (body) out.set(body, 8 + h.length);
  return out;
}

/** Decodes the payload of a frame (everything after the total-length field). */
export function decodePayload<T>(payload: Uint8Array): Frame<T> {
  if (payload.length < 4) throw new FrameError("Frame too short");
  const hlen = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true);
  if (hlen > payload.length - 4) throw new FrameError("Frame header length out of range");
  const header = JSON.parse(decoder.decode(payload.subarray(4, 4 + hlen))) as T;
  // a copy: consumers (Extism) may use the whole underlying buffer of a view
  return { header, body: payload.slice(4 + hlen) };
}

/**
 * Splits a byte stream into frames (daemon side, async reads). Feed chunks with
 * {@linkcode FrameReader.push}; complete frames come out of {@linkcode FrameReader.next}.
 */
export class FrameReader<T> {
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;

  /** Appends bytes read from the stream. */
  push(chunk: Uint8Array): void {
    if (this.#end + chunk.length > this.#buf.length) {
      const live = this.#end - this.#start;
      const size = Math.max(this.#buf.length, (live + chunk.length) * 2);
      if (size > this.#buf.length) {
        const next = new Uint8Array(size);
        next.set(this.#buf.subarray(this.#start, this.#end), 0);
        this.#buf = next;
      } else {
        this.#buf.copyWithin(0, this.#start, this.#end);
      }
      this.#start = 0;
      this.#end = live;
    }
    this.#buf.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  /** The next complete frame, or null when more bytes are needed. */
  next(): Frame<T> | null {
    const live = this.#end - this.#start;
    if (live < 4) return null;
    const total = new DataView(this.#buf.buffer, this.#start, 4).getUint32(0, true);
    if (total > MAX_FRAME_BYTES) throw new FrameError(`Frame of ${total} bytes exceeds the limit`);
    if (live < 4 + total) return null;
    const payload = this.#buf.slice(this.#start + 4, this.#start + 4 + total);
    this.#start += 4 + total;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return decodePayload<T>(payload);
  }
}
