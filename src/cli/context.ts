/**
 * What every command receives: product name/version, the logger and the compiled-in
 * agents a SaaS builder registered.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";

/** Where a compiled-in agent's bytes come from. */
export type AgentSource = Uint8Array | URL | (() => Promise<Uint8Array>);

/** Shared state for command actions. */
export interface CliContext {
  name: string;
  version: string;
  logger: Logger;
  /** Compiled-in agents by name, addressable as `builtin:<name>` wherever a .wasm file is accepted. */
  agents: Map<string, AgentSource>;
}

/** Reads a module given as a path or `builtin:<name>`. */
export async function readAgentModule(ctx: CliContext, fileOrBuiltin: string): Promise<Uint8Array> {
  if (fileOrBuiltin.startsWith("builtin:")) {
    const name = fileOrBuiltin.slice("builtin:".length);
    const src = ctx.agents.get(name);
    if (!src) {
      const known = [...ctx.agents.keys()].join(", ") || "none";
      throw new TypeError(`Unknown built-in agent: "${name}" (built-in: ${known})`);
    }
    if (src instanceof Uint8Array) return src;
    if (src instanceof URL) return await Deno.readFile(src);
    return await src();
  }
  return await Deno.readFile(fileOrBuiltin);
}
