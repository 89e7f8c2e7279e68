/**
 * Byte-level reading and writing of the WebAssembly binary format: LEB128 integers, names,
 * a growable output buffer. Every read past the end or malformed integer raises
 * {@linkcode WasmFormatError}, which the instrumenter reports as `invalid_module`.
 *
 * @module
 */

/** The module cannot be parsed (or uses a feature the instrumenter does not support). */
export class WasmFormatError extends Error {
  override name = "WasmFormatError";
  constructor(message: string, readonly offset: number, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Sequential reader over `bytes[pos, end)`. */
export class Reader {
  pos: number;
  constructor(readonly bytes: Uint8Array, pos = 0, readonly end = bytes.length) {
    this.pos = pos;
  }

  fail(what: string, at = this.pos): never {
    throw new WasmFormatError(what, at);
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  byte(): number {
    if (this.pos >= this.end) this.fail("Unexpected end of section");
    return this.bytes[this.pos++]!;
  }

  /** Unsigned LEB128 of at most 32 bits. */
  u32(): number {
    const b = this.bytes;
    let p = this.pos;
    const first = b[p];
    if (first !== undefined && first < 0x80 && p < this.end) { // one-byte fast path
      this.pos = p + 1;
      return first;
    }
    let result = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) this.fail("Unexpected end of section in an integer");
      const x = b[p++]!;
      result += (x & 0x7f) * 2 ** shift;
      if ((x & 0x80) === 0) break;
      shift += 7;
      if (shift >= 35) this.fail("Integer too long (more than 5 bytes)", p);
    }
    if (result > 0xffffffff) this.fail("Integer out of u32 range", p);
    this.pos = p;
    return result;
  }

  /** Signed LEB128 of at most 32 bits. */
  s32(): number {
    const b = this.bytes;
    let p = this.pos;
    let result = 0;
    let shift = 0;
    let x: number;
    do {
      if (p >= this.end) this.fail("Unexpected end of section in an integer");
      x = b[p++]!;
      if (shift >= 35) this.fail("Integer too long (more than 5 bytes)", p);
      result += (x & 0x7f) * 2 ** shift;
      shift += 7;
    } while (x & 0x80);
    if (x & 0x40) result -= 2 ** shift;
    this.pos = p;
    return result;
  }

  /** Skips a LEB128 integer of at most `maxBytes` bytes. */
  skipLeb(maxBytes: number): void {
    const b = this.bytes;
    let p = this.pos;
    if (p < this.end && b[p]! < 0x80) { // one-byte fast path
      this.pos = p + 1;
      return;
    }
    for (let i = 0;; i++) {
      if (i >= maxBytes) this.fail(`Integer too long (more than ${maxBytes} bytes)`, p);
      if (p >= this.end) this.fail("Unexpected end of section in an integer");
      if ((b[p++]! & 0x80) === 0) break;
    }
    this.pos = p;
  }

  skip(n: number): void {
    if (n > this.end - this.pos) this.fail("Unexpected end of section");
    this.pos += n;
  }

  /** A length-prefixed UTF-8 name. */
  name(): string {
    const n = this.u32();
    const start = this.pos;
    this.skip(n);
    return new TextDecoder("utf-8", { fatal: true }).decode(this.bytes.subarray(start, start + n));
  }
}

/** Growable output buffer. */
export class Writer {
  buf: Uint8Array;
  len = 0;
  constructor(capacity = 1024) {
    this.buf = new Uint8Array(Math.max(16, capacity));
  }

  #room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  byte(b: number): this {
    if (this.len >= this.buf.length) this.#room(1);
    this.buf[this.len++] = b;
    return this;
  }

  u32(n: number): this {
    if (n < 0x80 && this.len < this.buf.length) {
      this.buf[this.len++] = n;
      return this;
    }
    this.#room(5);
    do {
      let b = n & 0x7f;
      n = Math.floor(n / 128);
      if (n !== 0) b |= 0x80;
      this.buf[this.len++] = b;
    } while (n !== 0);
    return this;
  }

  s32(n: number): this {
    this.#room(5);
    n |= 0;
    for (;;) {
      const b = n & 0x7f;
      n >>= 7;
      if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
        this.buf[this.len++] = b;
        return this;
      }
      this.buf[this.len++] = b | 0x80;
    }
  }

  bytes(src: Uint8Array, start = 0, end = src.length): this {
    const n = end - start;
    this.#room(n);
    if (n < 32) { // most instructions: a copy loop beats allocating a subarray
      const buf = this.buf;
      let l = this.len;
      for (let i = start; i < end; i++) buf[l++] = src[i]!;
      this.len = l;
      return this;
    }
    this.buf.set(src.subarray(start, end), this.len);
    this.len += n;
    return this;
  }

  name(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.u32(b.length).bytes(b);
  }

  /** Appends `w`'s content as a section: id, size, content. */
  section(id: number, w: Writer): this {
    return this.byte(id).u32(w.len).bytes(w.buf, 0, w.len);
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}
