/**
 * The spool's share of its filesystem: a spool must never be the thing that fills the
 * disk, because SQLite in WAL mode cannot even delete rows once the disk is full (the
 * delete needs WAL space, and the checkpoint that would free WAL space needs database
 * space; seen on a full tmpfs). So the spool may grow by a quarter of the free space beyond
 * what it holds, keeping {@linkcode WAL_ALLOWANCE} free for the WAL; past that the overflow
 * policy (lowest priority, oldest first, counted in `dropped`) applies. With the spool's
 * files taking ~2.3× its payload bytes, this settles with about `WAL_ALLOWANCE` left free.
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";

/** Fraction of the free space (beyond the WAL allowance) the spool may grow into. */
export const DISK_SHARE = 0.25;

/**
 * Room kept free for the WAL: it grows to the spool's auto-checkpoint
 * (`wal_autocheckpoint=4000` pages = 16 MiB) before it is reset.
 */
export const WAL_ALLOWANCE = 16 * 1024 * 1024;

/** What {@linkcode diskBudget} found. */
export interface DiskBudget {
  /** The cap: `min(configured, held + DISK_SHARE × (available − WAL_ALLOWANCE))`. */
  cap: number;
  /** Bytes available to this process on the spool's filesystem. */
  available: number;
}

/**
 * Measures the spool's filesystem (`held` = the spool's payload bytes now); `null` when it
 * cannot be measured (the cap stays as it is).
 */
export async function diskBudget(
  dbPath: string,
  configured: number,
  held: number,
): Promise<DiskBudget | null> {
  try {
    const s = await statfs(dirname(dbPath));
    const available = Number(s.bavail) * Number(s.bsize);
    const room = Math.floor(DISK_SHARE * Math.max(0, available - WAL_ALLOWANCE));
    return { cap: Math.min(configured, held + room), available };
  } catch {
    return null;
  }
}
