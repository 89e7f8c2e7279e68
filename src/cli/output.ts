/**
 * Synchronous stdout writing for command output (complete lines, even when stdout is a
 * pipe that accepts partial writes).
 *
 * @module
 */
const encoder = new TextEncoder();

/** Writes `text` plus a newline (unless it ends with one) to stdout. */
export function out(text: string): void {
  const bytes = encoder.encode(text.endsWith("\n") ? text : text + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}
