/**
 * `<state_dir>/agents/running.json`: the last spec each agent ran successfully, and the
 * hashes each agent ran (newest last). After a restart, possibly offline, the node starts
 * these at once; a desired version that cannot run never replaces them. Behind a zod
 * schema: a malformed file is reported and ignored (the desired state still applies).
 *
 * @module
 */
import { z } from "zod";
import { dirname } from "node:path";
import { atomicWrite } from "../util/atomic_write.ts";
import { type AgentSpec, agentSpecSchema, formatZodError } from "../desired/spec.ts";

/** The file's schema (version 1). */
export const runningCacheSchema = z.strictObject({
  version: z.literal(1),
  agents: z.record(z.string(), agentSpecSchema),
  history: z.record(z.string(), z.array(z.string().regex(/^[0-9a-f]{64}$/))).default({}),
});
/** The parsed file. */
export type RunningCache = z.infer<typeof runningCacheSchema>;

/** An empty cache. */
export const emptyRunningCache = (): RunningCache => ({ version: 1, agents: {}, history: {} });

/** A running.json that does not parse. */
export class RunningCacheError extends Error {
  override name = "RunningCacheError";
}

/**
 * Parses the file's text. The pre-versioned format (a bare `{name: spec}` map) is read too.
 * Throws {@linkcode RunningCacheError} naming the path of the problem.
 */
export function parseRunningCache(text: string, path = "running.json"): RunningCache {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new RunningCacheError(`${path}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (json && typeof json === "object" && !("version" in json)) {
    json = { version: 1, agents: json, history: {} };
  }
  const r = runningCacheSchema.safeParse(json);
  if (!r.success) throw new RunningCacheError(`${path}: ${formatZodError(r.error)}`);
  return r.data;
}

/** Reads the cache; a missing file is an empty cache. */
export async function readRunningCache(path: string): Promise<RunningCache> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return emptyRunningCache();
    throw err;
  }
  return parseRunningCache(text, path);
}

/** Writes the cache atomically (temp file, fsync, rename), mode 0600. */
export async function writeRunningCache(path: string, cache: RunningCache): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await atomicWrite(path, JSON.stringify(cache));
}

/** The cache with `agents` as the running specs (history extended by their hashes). */
export function nextRunningCache(
  prev: RunningCache,
  running: Record<string, AgentSpec>,
  push: (h: readonly string[], sha: string) => string[],
): RunningCache {
  const history = { ...prev.history };
  for (const [name, spec] of Object.entries(running)) {
    history[name] = push(history[name] ?? [], spec.wasm.sha256);
  }
  return { version: 1, agents: running, history };
}
