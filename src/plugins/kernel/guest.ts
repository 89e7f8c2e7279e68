/**
 * A guest's environment in the runtime: the Extism kernel overrides and, for modules that
 * import `wasi_snapshot_preview1`, their WASI. The runtime builds it once per loaded
 * plugin from a {@linkcode GuestSetup} (made by the sandbox from the agent's grant and
 * config), binds it to each instance, runs `_initialize`, and asks it how a call ended.
 *
 * @module
 */
import type { CallContext } from "@extism/extism";
import type { Grants } from "../../desired/spec.ts";
import { createWasi, type Wasi, WasiDeadline, WasiExit } from "../wasi/preview1.ts";
import { remoteFs } from "../wasi/fs_remote.ts";
import { type Preopen, preopensFromGrants } from "../wasi/paths.ts";
import { GuestFailure, kernelFunctions, type KernelHooks, KernelState } from "./extism.ts";

/** Largest total of a plugin's variables (keys and values). */
export const VAR_MAX_BYTES = 1024 * 1024;

/** What the sandbox sends the runtime at load (structured-clonable). */
export interface GuestSetup {
  /** The agent's config as Extism config: strings as they are, other values as JSON. */
  config: Record<string, string>;
  varMaxBytes: number;
  /** Present when the module imports WASI. */
  wasi: {
    args: string[];
    env: Record<string, string>;
    preopens: Preopen[];
    /** `log`: stdout lines are info log lines; `pass`: they go to the stdout sink. */
    stdout: "log" | "pass";
  } | null;
}

/** The Extism config of an agent config object. */
export function extismConfig(config: unknown): Record<string, string> {
  if (!config || typeof config !== "object" || Array.isArray(config)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    out[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return out;
}

/** Only what `config.env` lists, as strings (other values as JSON). */
export function wasiEnv(config: unknown): Record<string, string> {
  const env = (config as { env?: unknown } | null)?.env;
  if (!env || typeof env !== "object" || Array.isArray(env)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (k === "" || k.includes("=") || k.includes("\0") || v === undefined || v === null) continue;
    out[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return out;
}

/** Builds the setup of a guest (on the sandbox side). */
export function guestSetup(
  name: string,
  grants: Grants,
  config: unknown,
  importsWasi: boolean,
  stdout: "log" | "pass" = "log",
): GuestSetup {
  return {
    config: extismConfig(config),
    varMaxBytes: VAR_MAX_BYTES,
    wasi: importsWasi
      ? { args: [name], env: wasiEnv(config), preopens: preopensFromGrants(grants.files), stdout }
      : null,
  };
}

/** What the guest needs from the runtime. */
export interface GuestHooks extends KernelHooks {
  /** Epoch ms deadline of the current call (or load). */
  deadline(): number;
  /** A stdout line in `pass` mode. */
  stdout(line: string): void;
  /** A refused path (written as an audit line), when files are opened here. */
  audit(fn: string, detail: Record<string, unknown>): void;
  /**
   * Runs one framed file operation elsewhere (the daemon, `wasi_fs`); without it files are
   * opened in this process.
   */
  fsCall?(input: Uint8Array): Uint8Array;
}

/** How a call that threw ended, when the guest layer knows. */
export type GuestOutcome =
  | { output: Uint8Array }
  | { failure: { code: GuestFailure["code"]; message: string }; broken: boolean };

/** One plugin's guest environment. */
export class GuestEnv {
  readonly kernel: KernelState;
  #wasi: Wasi | null = null;
  #memory: WebAssembly.Memory | undefined;

  constructor(readonly setup: GuestSetup, readonly hooks: GuestHooks) {
    this.kernel = new KernelState(setup.config, setup.varMaxBytes);
  }

  /** Import namespaces to merge into the instance's imports (`functions` of the SDK). */
  functions(): Record<string, Record<string, (ctx: CallContext, ...a: never[]) => unknown>> {
    const out: Record<string, Record<string, (ctx: CallContext, ...a: never[]) => unknown>> = {
      "extism:host/env": kernelFunctions(this.kernel, this.hooks) as Record<
        string,
        (ctx: CallContext, ...a: never[]) => unknown
      >,
    };
    const w = this.setup.wasi;
    if (w) {
      this.#wasi?.close();
      const h = this.hooks;
      this.#wasi = createWasi({
        memory: () => this.#memory,
        args: w.args,
        env: w.env,
        ...(h.fsCall ? { fs: remoteFs((i) => h.fsCall!(i)) } : { preopens: w.preopens }),
        stdout: w.stdout === "pass"
          ? (l) => h.stdout(l)
          : (l) => h.log("info", l, { stream: "stdout" }),
        stderr: (l) => h.log("warn", l, { stream: "stderr" }),
        deadline: () => h.deadline(),
        onDeny: (fn, d) => h.audit(`wasi:${fn}`, d),
      });
      const ns: Record<string, (ctx: CallContext, ...a: never[]) => unknown> = {};
      for (const [name, f] of Object.entries(this.#wasi.imports)) {
        // the SDK passes its call context first
        ns[name] = (_ctx: CallContext, ...a: never[]) => f(...a);
      }
      out["wasi_snapshot_preview1"] = ns;
    }
    return out;
  }

  /** Binds a new instance (its memory, for WASI). */
  bind(instance: WebAssembly.Instance): void {
    const m = instance.exports["memory"];
    this.#memory = m instanceof WebAssembly.Memory ? m : undefined;
  }

  /** Starts a call. */
  begin(): void {
    this.kernel.output = null;
  }

  /** Ends a call (flushes partial stdout/stderr lines); returns the output it set. */
  end(): Uint8Array {
    this.#wasi?.flush();
    return this.kernel.outputSoFar();
  }

  /** How a call that threw `err` ended, or null when the runtime should classify it. */
  outcome(err: unknown, fn: string): GuestOutcome | null {
    if (err instanceof WasiExit) {
      if (err.code === 0) return { output: this.end() };
      this.end();
      return {
        failure: { code: "plugin_error", message: `"${fn}" exited with code ${err.code}` },
        broken: true,
      };
    }
    if (err instanceof WasiDeadline) {
      this.end();
      return {
        failure: {
          code: "timeout",
          message: `Call to "${fn}" exceeded its deadline: ${err.message}`,
        },
        broken: true,
      };
    }
    if (err instanceof GuestFailure) {
      this.end();
      return { failure: { code: err.code, message: err.message }, broken: false };
    }
    return null;
  }

  /** Closes the guest's files. */
  close(): void {
    this.#wasi?.close();
    this.#wasi = null;
  }
}
