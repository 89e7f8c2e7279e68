/**
 * How a sandbox host process is started: the same Deno (or the same compiled binary with a
 * hidden subcommand), no permissions, a clean environment, a small V8 heap, and a data
 * segment limit (`RLIMIT_DATA`, via `prlimit` or `sh -c 'ulimit -d'`).
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

/** Hidden subcommand of a compiled `machine-room` binary that runs the sandbox host. */
export const SANDBOX_HOST_COMMAND = "__sandbox-host";

/**
 * Address space V8 and Deno claim as writable data before any plugin runs (code range,
 * heap reservations): measured at ~550-600 MB; `RLIMIT_DATA` is this plus the ceiling.
 * `RLIMIT_AS` cannot be used: Oilpan's cage alone reserves more than 16 GB of address space.
 */
export const DATA_BASE_MB = 768;

/** Largest wasm table any plugin may have (V8's `--wasm-max-table-size`, a backstop). */
export const V8_MAX_TABLE_ENTRIES = 1 << 20;

/** Options of {@linkcode sandboxHostCommand}. */
export interface SpawnOptions {
  /** V8 old-space limit of the host process in MiB. */
  heapMb: number;
  /** Ceiling of the host process in MiB (resident), used for `RLIMIT_DATA`. */
  ceilingMb: number;
}

/** A command line and environment for `Deno.Command`. */
export interface HostCommand {
  cmd: string;
  args: string[];
  env: Record<string, string>;
  /** How the hard limit is applied: "prlimit", "ulimit" or "none". */
  limiter: "prlimit" | "ulimit" | "none";
}

/** True when this process is a `deno compile`d binary rather than the `deno` CLI. */
export function isCompiled(): boolean {
  return !/^deno(\.exe)?$/i.test(basename(Deno.execPath()));
}

function findConfig(entry: URL): string | null {
  if (entry.protocol !== "file:") return null;
  let dir = dirname(fromFileUrl(entry));
  for (let i = 0; i < 6; i++) {
    for (const name of ["deno.json", "deno.jsonc"]) {
      try {
        if (Deno.statSync(join(dir, name)).isFile) return join(dir, name);
      } catch {
        // not here
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

function which(paths: string[]): string | null {
  for (const p of paths) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // absent
    }
  }
  return null;
}

/** Builds the command that starts one sandbox host process. */
export function sandboxHostCommand(opts: SpawnOptions): HostCommand {
  const exec = Deno.execPath();
  const v8 = [
    `--max-old-space-size=${opts.heapMb}`,
    "--max-semi-space-size=1",
    `--wasm-max-table-size=${V8_MAX_TABLE_ENTRIES}`,
    "--single-threaded-gc",
  ];
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const k of ["DENO_DIR", "HOME", "XDG_CACHE_HOME", "DENO_NO_UPDATE_CHECK"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  let args: string[];
  if (isCompiled()) {
    env["DENO_V8_FLAGS"] = v8.join(",");
    args = [SANDBOX_HOST_COMMAND];
  } else {
    const entry = new URL("./child_main.ts", import.meta.url);
    const config = findConfig(entry);
    args = [
      "run",
      "--no-prompt",
      "--no-code-cache",
      "--no-check",
      // read (as absent: the environment is cleared) by Extism JS at import, then revoked
      "--allow-env=EXTISM_ENABLE_WASI_OUTPUT,__MINIMATCH_TESTING_PLATFORM__",
      ...(config ? ["--config", config] : []),
      `--v8-flags=${v8.join(",")}`,
      entry.protocol === "file:" ? fromFileUrl(entry) : entry.href,
    ];
  }
  const dataKb = (opts.ceilingMb + DATA_BASE_MB) * 1024;
  const prlimit = which(["/usr/bin/prlimit", "/bin/prlimit", "/usr/sbin/prlimit"]);
  if (Deno.build.os !== "linux") return { cmd: exec, args, env, limiter: "none" };
  if (prlimit) {
    return {
      cmd: prlimit,
      args: [`--data=${dataKb * 1024}`, "--", exec, ...args],
      env,
      limiter: "prlimit",
    };
  }
  return {
    cmd: "/bin/sh",
    args: ["-c", `ulimit -d ${dataKb} && exec "$0" "$@"`, exec, ...args],
    env,
    limiter: "ulimit",
  };
}
