/**
 * The handle of one loaded plugin: its call queue (calls to one plugin never overlap),
 * JSON helpers and the timing of its last call.
 *
 * @module
 */
import type { Limits } from "../desired/spec.ts";
import type { PluginEntry } from "./pool.ts";
import type { SandboxImpl } from "./sandbox.ts";
import { type AgentPlugin, type CallStats, type ModuleInfo, PluginError } from "./types.ts";

const encoder = new TextEncoder();

/** An {@linkcode AgentPlugin} backed by a sandbox host process. */
export class PluginHandle implements AgentPlugin {
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  lastCall: CallStats | null = null;

  constructor(
    private readonly sandbox: SandboxImpl,
    private readonly entry: PluginEntry,
    readonly info: ModuleInfo,
    readonly limits: Limits,
    private readonly exportSet: Set<string>,
  ) {}

  get name(): string {
    return this.entry.name;
  }

  has(fn: string): boolean {
    return this.exportSet.has(fn);
  }

  call(fn: string, input?: Uint8Array | string): Promise<Uint8Array> {
    const enqueued = performance.now();
    const run = this.#queue.then(
      () => this.#callNow(fn, input, enqueued),
      () => this.#callNow(fn, input, enqueued),
    );
    this.#queue = run.catch(() => {});
    return run;
  }

  async callJson<T = unknown>(fn: string, input?: unknown): Promise<T> {
    const out = await this.call(fn, input === undefined ? undefined : JSON.stringify(input));
    if (out.length === 0) return null as T;
    const text = new TextDecoder().decode(out);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new PluginError(`Output of "${fn}" is not JSON: ${text.slice(0, 200)}`);
    }
  }

  #callNow(fn: string, input: Uint8Array | string | undefined, enqueued: number) {
    if (this.#closed) throw new Error(`Plugin "${this.name}" is closed`);
    if (!this.exportSet.has(fn)) {
      throw new TypeError(`Plugin "${this.name}" does not export function: "${fn}"`);
    }
    const bytes = input === undefined
      ? null
      : typeof input === "string"
      ? encoder.encode(input)
      : input;
    return this.sandbox.call(this.entry, fn, bytes, enqueued, (s) => this.lastCall = s);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    await this.sandbox.unload(this.entry);
  }
}
