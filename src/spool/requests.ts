/**
 * `machine-room spool dead-letters` talks to the spool: directly when no daemon holds it,
 * else through request files the running daemon answers (the daemon holds the spool's
 * database lock). A request is `<state_dir>/spool-requests/<ulid>.json`
 * (`{"action":"list"|"retry"|"purge","ids"?:[…]}`, written 0600 then renamed into place);
 * the daemon writes `<ulid>.result.json` and removes the request.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import type { Logger } from "../log/logger.ts";
import type { DeadLetter, Spool } from "./mod.ts";

/** Directory of the request files under the state dir. */
export const SPOOL_REQUESTS_DIR = "spool-requests";

/** A request to the spool. */
export const spoolRequestSchema = z.object({
  action: z.enum(["list", "retry", "purge"]),
  /** Dead-letter ids; all when absent (retry/purge). */
  ids: z.array(z.string().min(1).max(64)).max(10_000).optional(),
});
/** A request to the spool. */
export type SpoolRequest = z.infer<typeof spoolRequestSchema>;

/** A dead letter as printed by `--json`. */
export interface DeadLetterJson {
  id: string;
  subject: string;
  priority: number;
  size: number;
  reason: string;
  detail: string;
  count: number;
  first_seen: string;
  last_seen: string;
  parked_at: string;
  created_at: string;
}

/** The answer to a {@linkcode SpoolRequest}. */
export interface SpoolRequestResult {
  dead_letters: DeadLetterJson[];
  retried?: number;
  purged?: number;
  error?: string;
}

const iso = (t: number) => new Date(t).toISOString();

/** The JSON form of a dead letter. */
export function deadLetterJson(d: DeadLetter): DeadLetterJson {
  return {
    id: d.id,
    subject: d.subject,
    priority: d.priority,
    size: d.size,
    reason: d.reason,
    detail: d.detail,
    count: d.count,
    first_seen: iso(d.firstSeen),
    last_seen: iso(d.lastSeen),
    parked_at: iso(d.parkedAt),
    created_at: iso(d.createdAt),
  };
}

/** Runs one request against an open spool. */
export function runSpoolRequest(spool: Spool, req: SpoolRequest): SpoolRequestResult {
  const r: SpoolRequestResult = { dead_letters: [] };
  if (req.action === "retry") r.retried = spool.retryDeadLetters(req.ids);
  if (req.action === "purge") r.purged = spool.purgeDeadLetters(req.ids);
  r.dead_letters = spool.deadLetters(10_000).map(deadLetterJson);
  return r;
}

async function writeFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600 });
  await Deno.rename(tmp, path);
}

/** Answers every pending request file once (the daemon calls this on a timer). */
export async function serveSpoolRequests(
  stateDir: string,
  spool: Spool,
  log: Logger,
): Promise<void> {
  const dir = join(stateDir, SPOOL_REQUESTS_DIR);
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return;
  }
  for (const e of entries) {
    if (!e.isFile || !/^[0-9A-Z]{26}\.json$/.test(e.name)) continue;
    const path = join(dir, e.name);
    let result: SpoolRequestResult;
    try {
      const req = spoolRequestSchema.parse(JSON.parse(await Deno.readTextFile(path)));
      result = runSpoolRequest(spool, req);
      if (req.action !== "list") {
        log.info("spool request", { action: req.action, ...result, dead_letters: undefined });
      }
    } catch (err) {
      result = { dead_letters: [], error: String((err as Error)?.message ?? err) };
    }
    await writeFile(join(dir, e.name.replace(/\.json$/, ".result.json")), JSON.stringify(result))
      .catch((err) => log.warn("cannot answer spool request", { error: String(err) }));
    await Deno.remove(path).catch(() => {});
  }
}

/** Sends a request to the running daemon and waits for its answer. */
export async function requestFromDaemon(
  stateDir: string,
  id: string,
  req: SpoolRequest,
  timeoutMs = 10_000,
): Promise<SpoolRequestResult | null> {
  const dir = join(stateDir, SPOOL_REQUESTS_DIR);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, `${id}.json`), JSON.stringify(req));
  const resultPath = join(dir, `${id}.result.json`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const text = await Deno.readTextFile(resultPath);
      await Deno.remove(resultPath).catch(() => {});
      return JSON.parse(text) as SpoolRequestResult;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await Deno.remove(join(dir, `${id}.json`)).catch(() => {});
  return null;
}
