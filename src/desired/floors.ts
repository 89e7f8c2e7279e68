/**
 * Version floors of the desired-state keys: the highest version a node ever accepted per
 * KV key, kept in `<state_dir>/desired/floors.json` (atomic write, 0600). They survive
 * restarts and a cache that no longer verifies, so a replayed older envelope is refused
 * even then (DESIGN §4: no rollback attacks).
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { atomicWrite } from "../util/atomic_write.ts";

const floorsSchema = z.record(z.string(), z.number().int().nonnegative());

/** Floors per key, e.g. `{"site.s1": 7}`. */
export type VersionFloors = Record<string, number>;

/** The floors file of a desired-state dir. */
export function floorsPath(dir: string): string {
  return join(dir, "floors.json");
}

/**
 * Reads the floors; `{}` when there is no file yet. A corrupt file throws: the caller
 * must not treat "unreadable" as "no floor".
 */
export async function loadFloors(dir: string): Promise<VersionFloors> {
  let text: string;
  try {
    text = await Deno.readTextFile(floorsPath(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    throw err;
  }
  const r = floorsSchema.safeParse(JSON.parse(text));
  if (!r.success) throw new TypeError(`Invalid ${floorsPath(dir)}: ${r.error.message}`);
  return r.data;
}

/** Writes the floors atomically (0600). */
export async function saveFloors(dir: string, floors: VersionFloors): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await atomicWrite(floorsPath(dir), JSON.stringify(floors));
}
