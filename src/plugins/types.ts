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
  /** The agent is quarantined (its sandbox process was killed repeatedly): do not retry. */
  readonly quarantined: boolean;
  constructor(
    readonly code: SandboxErrorCode,
    message: string,
    options?: ErrorOptions & { quarantined?: boolean },
  ) {
    super(message, options);
    this.quarantined = options?.quarantined ?? false;
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
  /** The agent's config: Extism `config_get` reads it, WASI `environ_*` its `env`. */
  config?: unknown;
  /** Receives a WASI module's stdout lines instead of the log (`plugin run --wasi-stdout`). */
  stdout?: (line: string) => void;
  /**
   * Test only: load without fuel metering, so only the kill boundary can stop a runaway.
   * (The daemon sets it for the agents named in `MR_SANDBOX_TEST_UNMETERED`.)
   */
  unmetered?: boolean;
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
  /** WASI preview 1 functions it imports (`wasi_snapshot_preview1`). */
  wasiFunctions: string[];
  /** Problems against ABI v1 (empty when compatible). */
  abiProblems: string[];
}

/** Timing of a plugin's last call: the deadline starts when it starts executing. */
export interface CallStats {
  fn: string;
  /** Time the call waited for earlier calls (its own plugin's and its process's). */
  queued_ms: number;
  /** Time from the start of execution to the result. */
  run_ms: number;
  /** Stop or error code; absent when the call succeeded. */
  code?: string;
}

/** A loaded, instrumented agent. Calls are serialised per plugin (never re-entered). */
export interface AgentPlugin {
  readonly name: string;
  readonly info: ModuleInfo;
  /** Timing of the last finished call (null before the first). */
  readonly lastCall: CallStats | null;
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
  /** Sandbox host processes hosting plugins. @default {1} */
  processes?: number;
  /** Former name of {@linkcode SandboxOptions.processes}. @deprecated */
  threads?: number;
  /**
   * Resident-memory ceiling of each sandbox host process in MiB: above it the process is
   * killed and the agent running reports `memory_limit`. @default {512}
   */
  processMemoryMb?: number;
  /** Time past a call's deadline before its process is killed. @default {500} */
  killGraceMs?: number;
  /** Directory for agent state (`mr_state_*` SQLite database). */
  stateDir: string;
  services: HostServices;
  logger: Logger;
}

/** A sandbox host process of the pool, for health and tests. */
export interface SandboxProcessInfo {
  pid: number;
  /** Times this slot's process was restarted. */
  restarts: number;
  plugins: number;
  rss_mb: number;
}

/** A pool of sandbox host processes hosting many plugins. */
export interface Sandbox extends AsyncDisposable {
  load(wasm: Uint8Array, options: LoadOptions): Promise<AgentPlugin>;
  /** The pool's processes (started ones only). */
  processes(): SandboxProcessInfo[];
  close(): Promise<void>;
}
