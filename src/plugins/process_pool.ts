/**
 * The sandbox's host processes, one per pool slot: started on first use, replaced (with the
 * slot's plugins reloaded) when one ends, and a standby started while an operation runs
 * past its deadline so that a kill does not add a process start to the neighbours' wait.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import type { PluginEntry, Slot } from "./pool.ts";
import { type ExitCause, HostProcess, type HostProcessEvents } from "./process/host_process.ts";
import type { FromHost } from "./protocol.ts";
import { SandboxError, type SandboxProcessInfo } from "./types.ts";

/** How long a standby process started during a grace period is kept unused. */
const STANDBY_MS = 10_000;

/** What the pool needs from the sandbox. */
export interface PoolHooks {
  host: HostProcessEvents["host"];
  log(m: Extract<FromHost, { t: "log" }>): void;
  /** Loads `entry` into a fresh process (skipping quarantined agents; logs failures). */
  reload(proc: HostProcess, entry: PluginEntry): Promise<void>;
  closed(): boolean;
  logger: Logger;
}

/** The host processes of a sandbox's slots. */
export class ProcessPool {
  constructor(
    private readonly slots: Slot[],
    private readonly limits: { heapMb: number; ceilingMb: number },
    private readonly hooks: PoolHooks,
  ) {}

  #spawn(slot: Slot): HostProcess {
    return new HostProcess({ ...this.limits, watchMs: 50, startMs: 30_000 }, {
      host: this.hooks.host,
      log: (m) => this.hooks.log(m),
      exit: (p, cause, detail) => this.#onExit(slot, p, cause, detail),
      overdue: (p) => this.#onOverdue(slot, p),
    });
  }

  /**
   * An operation ran past its deadline: start the slot's next process during the grace
   * period. Closed unused after {@linkcode STANDBY_MS}.
   */
  #onOverdue(slot: Slot, proc: HostProcess): void {
    if (slot.proc !== proc || this.hooks.closed() || (slot.standby && !slot.standby.dead)) return;
    const standby = this.#spawn(slot);
    slot.standby = standby;
    clearTimeout(slot.standbyTimer);
    slot.standbyTimer = setTimeout(() => {
      if (slot.standby !== standby) return;
      slot.standby = null;
      void standby.close();
    }, STANDBY_MS);
    Deno.unrefTimer(slot.standbyTimer as unknown as number);
  }

  /** The slot's live process, started (and its plugins reloaded) when needed. */
  async ensure(slot: Slot): Promise<HostProcess> {
    if (slot.proc && !slot.proc.dead) return slot.proc;
    if (this.hooks.closed()) throw new SandboxError("trap", "Sandbox is closed");
    let proc = slot.standby && !slot.standby.dead ? slot.standby : null;
    slot.standby = null;
    clearTimeout(slot.standbyTimer);
    proc ??= this.#spawn(slot);
    if (slot.proc) slot.restarts++;
    slot.proc = proc;
    await proc.ready;
    for (const e of slot.entries) e.loaded = false;
    for (const e of slot.entries) await this.hooks.reload(proc, e);
    return proc;
  }

  #onExit(slot: Slot, proc: HostProcess, cause: ExitCause, detail: string): void {
    if (slot.standby === proc) slot.standby = null;
    if (slot.proc !== proc) return;
    for (const e of slot.entries) e.loaded = false;
    if (cause === "closed" || this.hooks.closed()) return;
    this.hooks.logger.warn("sandbox host process ended", { pid: proc.pid, cause, detail });
    // restart now so the other plugins are ready for their next call
    void slot.exclusive(() => this.ensure(slot)).catch((err) =>
      this.hooks.logger.error("sandbox host process restart failed", { err: String(err) })
    );
  }

  /** The live processes. */
  processes(): SandboxProcessInfo[] {
    return this.slots.filter((s) => s.proc && !s.proc.dead).map((s) => ({
      pid: s.proc!.pid,
      restarts: s.restarts,
      plugins: s.entries.size,
      rss_mb: s.proc!.rssMb(),
    }));
  }

  /** Ends every process (standbys too). */
  async close(): Promise<void> {
    for (const s of this.slots) clearTimeout(s.standbyTimer);
    await Promise.all(this.slots.flatMap((s) => [s.proc?.close(), s.standby?.close()]));
  }
}
