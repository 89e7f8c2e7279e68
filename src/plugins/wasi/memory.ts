/**
 * Bounds-checked access to the guest's linear memory for the WASI functions: every read
 * or write outside the memory throws {@linkcode Fault}, which the caller turns into
 * `EFAULT` (never a trap).
 *
 * @module
 */

/** A guest pointer outside its memory. */
export class Fault extends Error {
  override name = "Fault";
}

const decoder = new TextDecoder();

/** A view of the guest memory, re-created per WASI call (the memory may have grown). */
export class Mem {
  readonly view: DataView;
  readonly u8: Uint8Array;
  constructor(memory: WebAssembly.Memory) {
    this.view = new DataView(memory.buffer);
    this.u8 = new Uint8Array(memory.buffer);
  }

  check(ptr: number, len: number): void {
    if (ptr < 0 || len < 0 || ptr + len > this.u8.length) {
      throw new Fault(`Guest pointer ${ptr}+${len} outside memory of ${this.u8.length} bytes`);
    }
  }
  u8At(ptr: number): number {
    this.check(ptr, 1);
    return this.view.getUint8(ptr);
  }
  u16At(ptr: number): number {
    this.check(ptr, 2);
    return this.view.getUint16(ptr, true);
  }
  u32At(ptr: number): number {
    this.check(ptr, 4);
    return this.view.getUint32(ptr, true);
  }
  u64At(ptr: number): bigint {
    this.check(ptr, 8);
    return this.view.getBigUint64(ptr, true);
  }
  setU8(ptr: number, v: number): void {
    this.check(ptr, 1);
    this.view.setUint8(ptr, v);
  }
  setU16(ptr: number, v: number): void {
    this.check(ptr, 2);
    this.view.setUint16(ptr, v, true);
  }
  setU32(ptr: number, v: number): void {
    this.check(ptr, 4);
    this.view.setUint32(ptr, v >>> 0, true);
  }
  setU64(ptr: number, v: bigint): void {
    this.check(ptr, 8);
    this.view.setBigUint64(ptr, BigInt.asUintN(64, v), true);
  }
  bytes(ptr: number, len: number): Uint8Array {
    this.check(ptr, len);
    return this.u8.subarray(ptr, ptr + len);
  }
  write(ptr: number, data: Uint8Array): void {
    this.check(ptr, data.length);
    this.u8.set(data, ptr);
  }
  string(ptr: number, len: number): string {
    return decoder.decode(this.bytes(ptr, len));
  }
  /** The buffers of an iovec array (`{buf: u32, len: u32}` × n). */
  iovecs(ptr: number, n: number): Uint8Array[] {
    if (n < 0 || n > 1024) throw new Fault(`Bad iovec count ${n}`);
    const out: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      out.push(this.bytes(this.u32At(ptr + i * 8), this.u32At(ptr + i * 8 + 4)));
    }
    return out;
  }
}
