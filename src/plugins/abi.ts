/**
 * ABI v1 facts (plugins-sdk/ABI.md): host functions, the grant each needs, module
 * validation and `inspect`.
 *
 * @module
 */
import type { Grants } from "../desired/spec.ts";
import { HOST_FUNCTION_TABLE } from "./host/table.ts";
import { type ModuleInfo, SandboxError } from "./types.ts";
import { KERNEL_FUNCTION_NAMES } from "./kernel/extism.ts";
import { WASI_FUNCTIONS, WASI_MODULE } from "./wasi/preview1.ts";
import { importSignatures, WASI_SIGNATURES } from "./wasi/signatures.ts";

/** Import module of the host functions. */
export const HOST_MODULE = "extism:host/user";
/** Import module of the Extism kernel. */
export const KERNEL_MODULE = "extism:host/env";

/** Exports an agent may have (at least one). */
export const AGENT_EXPORTS = [
  "mr_describe",
  "mr_init",
  "mr_reconcile",
  "mr_command",
  "mr_shutdown",
] as const;

/**
 * ABI v1 host functions and whether `grants` allows importing them (derived from the one
 * description of each, host/table.ts).
 */
export const HOST_FUNCTIONS: Record<string, (g: Grants) => boolean> = Object.fromEntries(
  HOST_FUNCTION_TABLE.map((f) => [f.name, (g: Grants) => f.allowed(g)]),
);

/** Extism kernel functions the runtime provides (`kernel/extism.ts`). */
const KERNEL_FUNCTIONS = new Set(KERNEL_FUNCTION_NAMES);
/** WASI preview 1 functions the runtime provides (`wasi/preview1.ts`). */
const WASI_SET = new Set<string>(WASI_FUNCTIONS);

/** sha256 of `bytes` as lowercase hex (WebCrypto). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compiles `bytes`, mapping engine errors to `invalid_module`. */
export async function compileModule(bytes: Uint8Array): Promise<WebAssembly.Module> {
  if (bytes.length < 8) {
    throw new SandboxError("invalid_module", `Not a WebAssembly module: ${bytes.length} bytes`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new SandboxError("invalid_module", "Not a WebAssembly module: bad magic number");
  }
  try {
    return await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new SandboxError("invalid_module", `Invalid WebAssembly module: ${msg}`, { cause: err });
  }
}

/** Static facts and ABI problems of a compiled module. */
export function describeModule(
  module: WebAssembly.Module,
  sha256: string,
  size: number,
  /** The module's bytes: with them, WASI import signatures are checked too. */
  bytes?: Uint8Array,
): ModuleInfo {
  const exps = WebAssembly.Module.exports(module);
  const imps = WebAssembly.Module.imports(module);
  const problems: string[] = [];
  const hostFunctions: string[] = [];
  const wasiFunctions: string[] = [];
  for (const imp of imps) {
    const where = `${imp.module}.${imp.name}`;
    if (imp.module === HOST_MODULE) {
      if (imp.kind !== "function") problems.push(`Import is not a function: "${where}"`);
      else if (!(imp.name in HOST_FUNCTIONS)) {
        problems.push(`Unknown host function: "${imp.name}" (not in ABI v1)`);
      } else hostFunctions.push(imp.name);
    } else if (imp.module === KERNEL_MODULE) {
      if (!KERNEL_FUNCTIONS.has(imp.name)) {
        problems.push(`Unknown Extism kernel function: "${imp.name}"`);
      }
    } else if (imp.module === WASI_MODULE) {
      if (imp.kind !== "function" || !WASI_SET.has(imp.name)) {
        problems.push(`Unknown WASI function: "${where}" (not in WASI preview 1)`);
      } else wasiFunctions.push(imp.name);
    } else {
      problems.push(`Import from unknown module: "${where}"`);
    }
  }
  if (bytes && wasiFunctions.length > 0) {
    let sigs: Map<string, string> | null = null;
    try {
      sigs = importSignatures(bytes, WASI_MODULE);
    } catch {
      // unreadable sections: compile already accepted the module, V8 checks the rest
    }
    for (const [name, sig] of sigs ?? []) {
      const want = WASI_SIGNATURES[name];
      if (want && sig !== want) {
        problems.push(
          `WASI function "${WASI_MODULE}.${name}" imported as (${sig}), preview 1 has (${want})`,
        );
      }
    }
  }
  const fnExports = exps.filter((e) => e.kind === "function").map((e) => e.name);
  // Extism's kernel keeps its blocks host-side, so a module needs no memory of its own;
  // WASI passes pointers into the guest's memory, so a WASI module must export it
  if (
    wasiFunctions.length > 0 && !exps.some((e) => e.kind === "memory" && e.name === "memory")
  ) {
    problems.push('Module imports WASI but does not export its memory as "memory"');
  }
  if (fnExports.length === 0) problems.push("Module exports no functions");
  else if (!fnExports.some((n) => (AGENT_EXPORTS as readonly string[]).includes(n))) {
    problems.push(`Module exports none of ${AGENT_EXPORTS.join(", ")}`);
  }
  return {
    sha256,
    size,
    exports: exps.map((e) => e.name),
    imports: imps.map((i) => `${i.module}.${i.name}`),
    hostFunctions,
    wasiFunctions,
    abiProblems: problems,
  };
}

/**
 * Statically inspects a module (no instantiation). Throws `invalid_module` only when the
 * bytes are not WebAssembly; ABI problems are listed in `abiProblems`.
 */
export async function inspectModule(bytes: Uint8Array): Promise<ModuleInfo> {
  const module = await compileModule(bytes);
  return describeModule(module, await sha256Hex(bytes), bytes.length, bytes);
}

/**
 * Throws `invalid_module` for ABI problems that make the module unloadable and
 * `capability_denied` for host functions `grants` cannot allow.
 */
export function checkLoadable(info: ModuleInfo, grants: Grants): void {
  // Exporting none of the agent entry points is tolerated for generic Extism plugins that
  // tests and `plugin run --call` drive; everything else is fatal.
  const fatal = info.abiProblems.filter((p) => !p.startsWith("Module exports none of"));
  if (fatal.length > 0) throw new SandboxError("invalid_module", fatal.join("; "));
  const denied = info.hostFunctions.filter((fn) => !HOST_FUNCTIONS[fn]!(grants));
  if (denied.length > 0) {
    throw new SandboxError(
      "capability_denied",
      `Module imports host functions its grants do not allow: ${denied.join(", ")}`,
    );
  }
}
