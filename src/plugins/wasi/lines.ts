/**
 * stdout/stderr of a WASI guest as lines: split at newlines and at the line cap, each
 * passed through a gate (the rate limit).
 *
 * @module
 */

const decoder = new TextDecoder();

/** Line-splits a stream and rate-limits the lines (a token bucket shared by both streams). */
export class Lines {
  #buf = "";
  constructor(
    private readonly sink: (line: string) => void,
    private readonly gate: () => boolean,
    private readonly max: number,
  ) {}
  write(bytes: Uint8Array): void {
    this.#buf += decoder.decode(bytes, { stream: true });
    let nl: number;
    while ((nl = this.#buf.indexOf("\n")) >= 0) {
      this.#emit(this.#buf.slice(0, nl));
      this.#buf = this.#buf.slice(nl + 1);
    }
    while (this.#buf.length > this.max) {
      this.#emit(this.#buf.slice(0, this.max));
      this.#buf = this.#buf.slice(this.max);
    }
  }
  flush(): void {
    if (this.#buf) this.#emit(this.#buf);
    this.#buf = "";
  }
  #emit(line: string): void {
    const l = line.endsWith("\r") ? line.slice(0, -1) : line;
    for (let i = 0; i < l.length || i === 0; i += this.max) {
      if (this.gate()) this.sink(l.slice(i, i + this.max));
    }
  }
}
