/**
 * `mr_exec`: a granted argv, exactly. `argv[0]` is resolved to an absolute path when the
 * spec is applied ({@linkcode resolveExecGrants}, at load) over a fixed search path — never
 * the daemon's `PATH` at call time — and the child runs with a clean environment
 * ({@linkcode EXEC_ENV}) in a fixed working directory ({@linkcode EXEC_CWD}).
 *
 * @module
 */
import { isAbsolute, join } from "node:path";
import { EXEC_CWD, EXEC_ENV, EXEC_SEARCH_PATH, MAX_HOST_WRITE_BYTES } from "./limits.ts";
import { HostCallError } from "./errors.ts";
import { readCapped } from "./stream.ts";

/** A granted argv with its program resolved (`null`: not found when the spec was applied). */
export interface ResolvedExec {
  argv: readonly string[];
  program: string | null;
}

function executable(path: string): boolean {
  try {
    const st = Deno.statSync(path);
    return st.isFile && ((st.mode ?? 0o755) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Resolves each granted argv's program over {@linkcode EXEC_SEARCH_PATH} (or as given when absolute). */
export function resolveExecGrants(exec: readonly (readonly string[])[]): ResolvedExec[] {
  return exec.map((argv) => {
    const p = argv[0] ?? "";
    if (p.includes("/")) {
      return { argv, program: isAbsolute(p) && executable(p) ? p : null };
    }
    const found = EXEC_SEARCH_PATH.map((d) => join(d, p)).find(executable);
    return { argv, program: found ?? null };
  });
}

/** Runs the granted `entry` with optional stdin, until `signal` aborts. */
export async function runGrantedExec(
  entry: ResolvedExec,
  stdin: string | undefined,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const name = entry.argv[0]!;
  if (entry.program === null) {
    throw new HostCallError(
      "not_found",
      `Cannot run "${name}": not found in ${EXEC_SEARCH_PATH.join(":")} when the spec was applied`,
    );
  }
  const input = stdin === undefined ? undefined : new TextEncoder().encode(stdin);
  if (input && input.length > MAX_HOST_WRITE_BYTES) {
    throw new HostCallError(
      "payload_too_large",
      `stdin is ${input.length} bytes, more than ${MAX_HOST_WRITE_BYTES}`,
    );
  }
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(entry.program, {
      args: entry.argv.slice(1) as string[],
      clearEnv: true,
      env: { ...EXEC_ENV },
      cwd: EXEC_CWD,
      stdin: input ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).spawn();
  } catch (err) {
    const code = err instanceof Deno.errors.NotFound ? "not_found" : "io_error";
    throw new HostCallError(code, `Cannot run "${name}": ${(err as Error).message}`);
  }
  if (input && child.stdin) {
    const w = child.stdin.getWriter();
    await w.write(input).catch(() => {});
    await w.close().catch(() => {});
  }
  const [stdout, stderr, status] = await Promise.all([
    readCapped(child.stdout),
    readCapped(child.stderr),
    child.status,
  ]);
  if (signal.aborted) {
    throw new HostCallError("timeout", `Command "${name}" timed out after ${timeoutMs} ms`);
  }
  return { code: status.code, stdout, stderr };
}
