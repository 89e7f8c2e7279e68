/**
 * One sandbox host process seen from the daemon: spawn, frames in and out, a kill timer
 * for the operation in flight (deadline + grace), a resident-memory watchdog, and what its
 * exit means (killed at a deadline, over its memory ceiling, or crashed).
 *
 * @module
 */
import type { FromHost, ToHost } from "../protocol.ts";
import { encodeFrame, type Frame, FrameReader } from "./frames.ts";
import { sandboxHostCommand, type SpawnOptions } from "./spawn.ts";

/** Why a host process ended. */
export type ExitCause = "deadline" | "memory" | "crash" | "closed";

/** The process ended while an operation was in flight. */
export class HostProcessExit extends Error {
  override name = "HostProcessExit";
  constructor(readonly reason: ExitCause, message: string, readonly peakRssMb: number) {
    super(message);
  }
}

type Done = Extract<FromHost, { t: "done" }>;

/** Callbacks from the process to the sandbox. */
export interface HostProcessEvents {
  /** A plugin asks for a host function; answer with `reply`. */
  host(msg: Extract<FromHost, { t: "host" }>, input: Uint8Array, proc: HostProcess): void;
  log(msg: Extract<FromHost, { t: "log" }>): void;
  /** The process ended (after pending operations were rejected). */
  exit(proc: HostProcess, cause: ExitCause, detail: string): void;
  /** The operation in flight passed its deadline (its kill time is near): once per operation. */
  overdue?(proc: HostProcess): void;
}

/** Options of a host process. */
export interface HostProcessOptions extends SpawnOptions {
  /** How often resident memory and the kill deadline are checked. */
  watchMs: number;
  /** Time the process gets to start and say ready. */
  startMs: number;
}

const STDERR_TAIL = 4096;

/** A running sandbox host process. */
export class HostProcess {
  readonly child: Deno.ChildProcess;
  readonly ready: Promise<void>;
  readonly limiter: string;
  pid = 0;
  dead = false;
  peakRssMb = 0;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Map<number, { resolve(d: Frame<Done>): void; reject(e: Error): void }>();
  #nextId = 1;
  #killCause: ExitCause | null = null;
  /** Epoch ms past which the operation in flight gets the process killed (0 = none). */
  #killAt = 0;
  /** Epoch ms of the operation's deadline (the `overdue` event), 0 once reported. */
  #overdueAt = 0;
  #watch: ReturnType<typeof setInterval> | undefined;
  #stderr = "";
  #readyResolve!: () => void;

  constructor(
    private readonly opts: HostProcessOptions,
    private readonly events: HostProcessEvents,
  ) {
    const c = sandboxHostCommand(opts);
    this.limiter = c.limiter;
    this.child = new Deno.Command(c.cmd, {
      args: c.args,
      env: c.env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.child.pid;
    this.#writer = this.child.stdin.getWriter();
    let readyReject!: (e: Error) => void;
    this.ready = new Promise<void>((res, rej) => {
      this.#readyResolve = res;
      readyReject = rej;
    });
    const startTimer = setTimeout(() => {
      readyReject(new Error(`Sandbox host process did not start within ${opts.startMs} ms`));
      this.kill("crash");
    }, opts.startMs);
    this.ready.then(() => clearTimeout(startTimer), () => clearTimeout(startTimer));
    this.ready.catch(() => {}); // awaited by whoever needs it; never an unhandled rejection
    void this.#readLoop();
    void this.#readStderr();
    this.#watch = setInterval(() => this.#sample(), opts.watchMs);
    Deno.unrefTimer(this.#watch as unknown as number);
    void this.child.status.then((s) => {
      clearInterval(this.#watch);
      this.dead = true;
      const cause: ExitCause = this.#killCause ??
        (/out of memory|heap limit|could not allocate/i.test(this.#stderr) ? "memory" : "crash");
      const detail = this.#describeExit(cause, s);
      const err = new HostProcessExit(cause, detail, this.peakRssMb);
      readyReject(err);
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
      this.events.exit(this, cause, detail);
    });
  }

  #describeExit(cause: ExitCause, s: Deno.CommandStatus): string {
    const how = s.signal ? `signal ${s.signal}` : `code ${s.code}`;
    const tail = this.#stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 500);
    switch (cause) {
      case "deadline":
        return `killed after a call did not stop by its deadline (${how})`;
      case "memory":
        return `exceeded its memory ceiling of ${this.opts.ceilingMb} MB (peak ${this.peakRssMb} MB, ${how})${
          tail ? `: ${tail}` : ""
        }`;
      case "closed":
        return "closed";
      default:
        return `exited unexpectedly (${how})${tail ? `: ${tail}` : ""}`;
    }
  }

  /** Current resident set size in MiB (0 once the process is gone). */
  rssMb(): number {
    try {
      const statm = Deno.readTextFileSync(`/proc/${this.pid}/statm`).split(" ");
      return Math.round(Number(statm[1]) * 4096 / 1048576);
    } catch {
      return 0;
    }
  }

  #sample(): void {
    if (this.dead) return;
    const now = Date.now();
    if (this.#killAt && now >= this.#killAt) {
      this.kill("deadline");
      return;
    }
    if (this.#overdueAt && now >= this.#overdueAt) {
      this.#overdueAt = 0;
      this.events.overdue?.(this);
    }
    const rss = this.rssMb();
    if (rss > this.peakRssMb) this.peakRssMb = rss;
    if (rss > this.opts.ceilingMb) this.kill("memory");
  }

  async #readLoop(): Promise<void> {
    // a BYOB reader into one reused buffer: no allocation per read (frames copies)
    const reader = this.child.stdout.getReader({ mode: "byob" });
    const frames = new FrameReader<FromHost>();
    let buf = new ArrayBuffer(64 * 1024);
    try {
      for (;;) {
        const { value, done } = await reader.read(new Uint8Array(buf));
        if (done || !value) return;
        frames.push(value);
        buf = value.buffer as ArrayBuffer;
        for (let f = frames.next(); f; f = frames.next()) this.#dispatch(f);
      }
    } catch {
      // a broken stream means a broken process: kill it, the exit handler reports it
      this.kill("crash");
    }
  }

  async #readStderr(): Promise<void> {
    const dec = new TextDecoder();
    try {
      for await (const chunk of this.child.stderr) {
        this.#stderr = (this.#stderr + dec.decode(chunk)).slice(-STDERR_TAIL);
      }
    } catch {
      // closed
    }
  }

  #dispatch(f: Frame<FromHost>): void {
    const m = f.header;
    switch (m.t) {
      case "ready":
        this.#readyResolve();
        return;
      case "done": {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        this.#killAt = 0;
        this.#overdueAt = 0;
        p?.resolve(f as Frame<Done>);
        return;
      }
      case "host":
        this.events.host(m, f.body, this);
        return;
      case "log":
        this.events.log(m);
        return;
    }
  }

  /** Sends one frame (in order with the others). */
  send(header: ToHost, body?: Uint8Array | null): void {
    if (this.dead) return;
    this.#writer.write(encodeFrame(header, body)).catch(() => {});
  }

  /**
   * Sends a load/unload/call and resolves with its `done` frame. When `killAt` (epoch ms) is
   * given, the process is killed if the answer has not come by then; past `deadline` the
   * `overdue` event fires first (the sandbox starts a standby process during the grace).
   */
  request(
    header: DistributiveOmit<Exclude<ToHost, { t: "reply" }>, "id">,
    body: Uint8Array | null,
    killAt?: number,
    deadline?: number,
  ): Promise<Frame<Done>> {
    if (this.dead) {
      return Promise.reject(new HostProcessExit("crash", "Sandbox host process is gone", 0));
    }
    const id = this.#nextId++;
    const p = new Promise<Frame<Done>>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    p.catch(() => {}); // the caller awaits p; a close() must not leave it unhandled
    // checked by the watchdog tick (no timer per call: they cost more than the call)
    this.#killAt = killAt ?? 0;
    // a metered call stops itself at its deadline and answers within ms: wait a little
    // before calling it overdue
    this.#overdueAt = deadline && killAt ? deadline + Math.min(100, (killAt - deadline) / 2) : 0;
    this.send({ ...header, id } as ToHost, body);
    return p;
  }

  /** Kills the process (SIGKILL); `cause` is what its exit will be reported as. */
  kill(cause: ExitCause): void {
    if (this.dead) return;
    this.#killCause ??= cause;
    try {
      this.child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }

  /** Ends the process and waits for it. */
  async close(): Promise<void> {
    this.kill("closed");
    await this.child.status.catch(() => {});
    await this.child.stdout.cancel().catch(() => {});
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
