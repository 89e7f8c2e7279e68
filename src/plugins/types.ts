/**
 * Public contract of the WASM sandbox (DESIGN §5). The implementation lives beside this
 * file; the agent manager, `plugin run` and the SDK tests use only these names.
 *
 * @module
 */
import type { Grants, Limits } from "../desired/spec.ts";
import type { HostServices } from "../host/services.ts";
import type { Logger } from "../log/logger.ts";

/** Sandbox stop codes (DESIGN §6); `plugin run` exits 3 with one of them. */
export const SandboxErrorCode = {
  FuelExhausted: "fuel_exhausted",
  Timeout: "timeout",
  MemoryLimit: "memory_limit",
  CapabilityDenied: "capability_denied",
  InvalidModule: "invalid_module",
  Trap: "trap",
  OutputTooLarge: "output_too_large",
} as const;
/** One of {@linkcode SandboxErrorCode}. */
export type SandboxErrorCode = typeof SandboxErrorCode[keyof typeof SandboxErrorCode];

/** A sandbox stop or a refusal at load. */
export class SandboxError extends Error {
  override name = "SandboxError";
  constructor(readonly code: SandboxErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
  }
  /** The JSON shape printed on stderr's last line by `plugin run`. */
  toJSON(): { error: { code: SandboxErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** True when `err` is a {@linkcode SandboxError} (optionally of `code`). */
export function isSandboxError(err: unknown, code?: SandboxErrorCode): err is SandboxError {
  return err instanceof SandboxError && (code === undefined || err.code === code);
}

/**
 * A failure the plugin itself reported (Extism `error_set`, or output that is not JSON for
 * `callJson`). Not a sandbox stop: the plugin is healthy and the next call works.
 */
export class PluginError extends Error {
  override name = "PluginError";
  readonly code = "plugin_error";
}

/** True when `err` is a {@linkcode PluginError}. */
export function isPluginError(err: unknown): err is PluginError {
  return err instanceof PluginError;
}

/** Options for loading one agent module. */
export interface LoadOptions {
  /** Agent name (identifier rule). */
  name: string;
  grants: Grants;
  limits: Limits;
}

/** Static facts about a module, from `inspect`. */
export interface ModuleInfo {
  sha256: string;
  size: number;
  exports: string[];
  /** Imports as `module.name`. */
  imports: string[];
  /** Host functions of ABI v1 it imports. */
  hostFunctions: string[];
  /** Problems against ABI v1 (empty when compatible). */
  abiProblems: string[];
}

/** A loaded, instrumented agent. Calls are serialised per plugin (never re-entered). */
export interface AgentPlugin {
  readonly name: string;
  readonly info: ModuleInfo;
  /** True when the module exports `fn`. */
  has(fn: string): boolean;
  /** Calls an export with raw input; resolves with its output bytes or rejects with SandboxError. */
  call(fn: string, input?: Uint8Array | string): Promise<Uint8Array>;
  /** Calls an export with JSON input and parses JSON output (empty output → null). */
  callJson<T = unknown>(fn: string, input?: unknown): Promise<T>;
  close(): Promise<void>;
}

/** Options for {@linkcode Sandbox} creation. */
export interface SandboxOptions {
  /** Runtime threads hosting plugins. @default {1} */
  threads?: number;
  /** Directory for agent state (`mr_state_*` SQLite database). */
  stateDir: string;
  services: HostServices;
  logger: Logger;
}

/** A pool of runtime threads hosting many plugins. */
export interface Sandbox extends AsyncDisposable {
  load(wasm: Uint8Array, options: LoadOptions): Promise<AgentPlugin>;
  close(): Promise<void>;
}
