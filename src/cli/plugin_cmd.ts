/**
 * Commands: `plugin run` and `plugin inspect` (DESIGN §6).
 *
 * `plugin run FILE.wasm` without `--call` runs the agent like the daemon's first
 * reconcile: `mr_init(config)` when exported, then `mr_reconcile` with a `command` trigger
 * (a WASI command module without them: `_start`),
 * and prints the last output. Exit codes: 0 ok, 1 runtime failure (or a plugin-reported
 * error), 2 usage or invalid input, 3 sandbox stop (stderr's last line is the JSON error).
 *
 * @module
 */
import type { Command } from "commander";
import { basename } from "node:path";
import { formatZodError, grantsSchema, limitsSchema } from "../desired/spec.ts";
import { createLogger } from "../log/logger.ts";
import { PluginError } from "../plugins/types.ts";
import { type CliContext, readAgentModule } from "./context.ts";
import { CliError, ExitCode, UsageError } from "./errors.ts";
import { out } from "./output.ts";

/** Options of `plugin run` as commander parses them. */
interface RunOptions {
  call?: string;
  input?: string;
  inputFile?: string;
  config?: string;
  wasiStdout?: boolean;
  grant?: string;
  fuel?: string;
  timeoutMs?: string;
  memoryMb?: string;
  stateDir?: string;
  name?: string;
  json?: boolean;
}

function parseJsonFlag(flag: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`Invalid ${flag}: not JSON: ${(err as Error).message}`);
  }
}

async function readGrant(value: string | undefined): Promise<unknown> {
  if (value === undefined) return {};
  let text = value;
  if (value.startsWith("@")) {
    try {
      text = await Deno.readTextFile(value.slice(1));
    } catch (err) {
      throw new UsageError(
        `Cannot read --grant file "${value.slice(1)}": ${(err as Error).message}`,
      );
    }
  }
  return parseJsonFlag("--grant", text);
}

function intFlag(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new UsageError(`Invalid ${flag}: not an integer: "${v}"`);
  return n;
}

async function readModule(ctx: CliContext, file: string): Promise<Uint8Array> {
  try {
    return await readAgentModule(ctx, file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new UsageError(`No such file: "${file}"`);
    if (err instanceof TypeError) throw new UsageError(err.message);
    throw new CliError(`Cannot read "${file}": ${(err as Error).message}`, ExitCode.Runtime, {
      cause: err,
    });
  }
}

function agentName(file: string, given: string | undefined): string {
  if (given) return given;
  const base = file.startsWith("builtin:") ? file.slice(8) : basename(file).replace(/\.wasm$/, "");
  const id = base.toLowerCase().replace(/[^a-z0-9_-]/g, "-").replace(/^[^a-z0-9]+/, "");
  return id.slice(0, 63) || "plugin";
}

/** The call input as given: `--input TEXT` (bytes as they are), `--input -` (stdin) or `--input-file F`. */
async function readInput(opts: RunOptions): Promise<Uint8Array | undefined> {
  if (opts.input !== undefined && opts.inputFile !== undefined) {
    throw new UsageError("Pass either --input or --input-file, not both");
  }
  if (opts.input === "-") {
    const chunks: Uint8Array[] = [];
    for await (const c of Deno.stdin.readable) chunks.push(c);
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return all;
  }
  if (opts.input !== undefined) return new TextEncoder().encode(opts.input);
  if (opts.inputFile === undefined) return undefined;
  try {
    return await Deno.readFile(opts.inputFile);
  } catch (err) {
    throw new UsageError(`Cannot read --input-file "${opts.inputFile}": ${(err as Error).message}`);
  }
}

async function runPlugin(ctx: CliContext, file: string, opts: RunOptions): Promise<void> {
  const grantsRaw = await readGrant(opts.grant);
  const grants = grantsSchema.safeParse(grantsRaw);
  if (!grants.success) throw new UsageError(`Invalid --grant: ${formatZodError(grants.error)}`);
  const limitsIn: Record<string, number> = {};
  const fuel = intFlag("--fuel", opts.fuel);
  const timeout = intFlag("--timeout-ms", opts.timeoutMs);
  const memory = intFlag("--memory-mb", opts.memoryMb);
  if (fuel !== undefined) limitsIn["fuel"] = fuel;
  if (timeout !== undefined) limitsIn["timeout_ms"] = timeout;
  if (memory !== undefined) limitsIn["memory_mb"] = memory;
  const limits = limitsSchema.safeParse(limitsIn);
  if (!limits.success) throw new UsageError(`Invalid limits: ${formatZodError(limits.error)}`);
  const config = opts.config === undefined ? null : parseJsonFlag("--config", opts.config);
  const given = await readInput(opts);
  const wasm = await readModule(ctx, file);

  const lines: string[] = [];
  const logger = opts.json
    ? createLogger({
      level: "debug",
      write: (l) => lines.push(JSON.stringify({ kind: "log", ...JSON.parse(l) })),
    })
    : ctx.logger;
  const stateDir = opts.stateDir ?? Deno.env.get("MR_STATE_DIR") ?? "./.state";
  // loaded on use: the sandbox is not resident in commands that do not run plugins
  const { createPrintingServices, createSandbox } = await import("../plugins/mod.ts");
  const sandbox = await createSandbox({
    stateDir,
    services: createPrintingServices((l) => lines.push(l)),
    logger,
  });
  try {
    const plugin = await sandbox.load(wasm, {
      name: agentName(file, opts.name),
      grants: grants.data,
      limits: limits.data,
      config,
      ...(opts.wasiStdout ? { stdout: (line: string) => out(line) } : {}),
    });
    let output: Uint8Array;
    if (opts.call) {
      if (!plugin.has(opts.call)) {
        throw new UsageError(`Module does not export function: "${opts.call}"`);
      }
      const input = given ??
        (opts.call === "mr_init" && opts.config !== undefined ? JSON.stringify(config) : undefined);
      output = await plugin.call(opts.call, input);
    } else if (!plugin.has("mr_init") && !plugin.has("mr_reconcile")) {
      // a WASI command module: its main (a proc_exit(n) other than 0 is a plugin error)
      if (!plugin.has("_start")) {
        throw new UsageError(
          "Module exports neither mr_init, mr_reconcile nor _start: pass --call FN",
        );
      }
      output = await plugin.call("_start", given);
    } else {
      output = new Uint8Array();
      if (plugin.has("mr_init")) output = await plugin.call("mr_init", JSON.stringify(config));
      if (plugin.has("mr_reconcile")) {
        const at = new Date().toISOString();
        const input = given ?? JSON.stringify({
          desired: config,
          facts: {},
          state: { last_status: null, runs: 0, last_run: null },
          trigger: { kind: "command", at },
        });
        output = await plugin.call("mr_reconcile", input);
      }
    }
    out(new TextDecoder().decode(output));
  } catch (err) {
    if (err instanceof PluginError) {
      throw new CliError(`Plugin reported an error: ${err.message}`, ExitCode.Runtime, {
        cause: err,
      });
    }
    throw err;
  } finally {
    await sandbox.close();
    if (opts.json) { for (const l of lines) out(l); }
  }
}

async function inspectPlugin(ctx: CliContext, file: string, opts: { json?: boolean }) {
  const { inspectModule } = await import("../plugins/mod.ts");
  const info = await inspectModule(await readModule(ctx, file));
  if (opts.json) {
    out(JSON.stringify({ ...info, abiCompatible: info.abiProblems.length === 0 }));
    return;
  }
  const list = (xs: string[]) => (xs.length ? xs.join(", ") : "(none)");
  out(
    [
      `file:            ${file}`,
      `sha256:          ${info.sha256}`,
      `size:            ${info.size} bytes`,
      `exports:         ${list(info.exports)}`,
      `imports:         ${list(info.imports)}`,
      `host functions:  ${list(info.hostFunctions)}`,
      `WASI functions:  ${list(info.wasiFunctions)}`,
      `ABI v1:          ${
        info.abiProblems.length ? "problems:\n  - " + info.abiProblems.join("\n  - ") : "ok"
      }`,
    ].join("\n"),
  );
}

/** Registers `plugin run` and `plugin inspect` on `program`. */
export function registerPluginCommands(program: Command, ctx: CliContext): void {
  const plugin = program.command("plugin").description("Run or inspect a WASM agent locally");
  plugin.command("run")
    .description("Run an agent in the sandbox once and print its output")
    .argument("<file>", "module path or builtin:<name>")
    .option("--call <fn>", "export to call (default: mr_init then mr_reconcile, or _start)")
    .option("--input <text>", "input of the call, bytes as given ('-': read stdin)")
    .option("--input-file <file>", "input of the call from a file")
    .option(
      "--config <json>",
      "agent config (JSON): mr_init's input, reconcile's desired, Extism config_get, WASI env",
    )
    .option("--wasi-stdout", "print a WASI module's stdout lines instead of logging them")
    .option("--grant <json|@file>", "grants (JSON or @file)")
    .option("--fuel <n>", "fuel per call")
    .option("--timeout-ms <n>", "wall-clock deadline per call")
    .option("--memory-mb <n>", "linear memory cap")
    .option("--state-dir <dir>", "state directory (default $MR_STATE_DIR or ./.state)")
    .option("--name <name>", "agent name (default: from the file name)")
    .option("--json", "also print emitted events, submissions and log lines as JSON lines")
    .action((file: string, opts: RunOptions) => runPlugin(ctx, file, opts));
  plugin.command("inspect")
    .description("Print a module's sha256, exports, imports and ABI v1 problems")
    .argument("<file>", "module path or builtin:<name>")
    .option("--json", "JSON output")
    .action((file: string, opts: { json?: boolean }) => inspectPlugin(ctx, file, opts));
}
