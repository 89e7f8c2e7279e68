/**
 * Test helper: runs the real edge daemon (`deno run -A main.ts run --config F`) as a
 * child process with its own state dir.
 *
 * @module
 */
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Options for {@linkcode startNode}. */
export interface StartNodeOptions {
  /** NATS URL(s). */
  natsUrl: string | string[];
  site?: string;
  node?: string;
  customer?: string;
  /** Reuse a state dir (restart tests); kept on dispose. Default: a temp dir removed on dispose. */
  stateDir?: string;
  /** Extra config fields merged over the defaults. */
  config?: Record<string, unknown>;
  /** Run with this existing config file (e.g. written by `provision`) instead of writing one. */
  configFile?: string;
  /** Extra `run` arguments. */
  args?: string[];
  /** Environment for the child. */
  env?: Record<string, string>;
  /** Deno flags before main.ts. @default {DAEMON_DENO_FLAGS} (what `deno task mr` ships) */
  denoArgs?: string[];
  /** The entry module instead of main.ts (a builder's binary with compiled-in agents). */
  entry?: string;
  /** Wait until `health.json` says connected (default true; false for offline starts). */
  waitConnected?: boolean;
  /** @default {30000} */
  timeoutMs?: number;
}

/** A running node. */
export interface RunningNode extends AsyncDisposable {
  stateDir: string;
  configPath: string;
  site: string;
  node: string;
  pid: number;
  child: Deno.ChildProcess;
  /** stderr log lines collected so far (JSON lines). */
  logs(): string[];
  /** The node's health.json (written every 2 s by the daemon). */
  health(): Promise<Record<string, unknown> | null>;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Resolves with the exit status. */
  status: Promise<Deno.CommandStatus>;
}

/**
 * The Deno flags the product runs the daemon with (`deno task mr`, `deno task compile`): a
 * 1 MB young generation and no V8 code cache keep an idle daemon's memory down (a daemon
 * starts once; see docs/daemon.md).
 */
export const DAEMON_DENO_FLAGS = ["--no-code-cache", "--v8-flags=--max-semi-space-size=1"];

/** Starts a node; resolves once it has written its first health document. */
export async function startNode(o: StartNodeOptions): Promise<RunningNode> {
  const ownDir = o.stateDir === undefined;
  const stateDir = o.stateDir ?? (await Deno.makeTempDir({ prefix: "mr-node-" }));
  const site = o.site ?? "site1";
  const node = o.node ?? "node1";
  const configPath = o.configFile ?? join(stateDir, "config.json");
  const config = {
    customer: o.customer ?? "acme",
    site,
    node,
    state_dir: stateDir,
    nats: { servers: Array.isArray(o.natsUrl) ? o.natsUrl : [o.natsUrl] },
    settings: { heartbeat_interval: "30s", facts_interval: "5m" },
    ...o.config,
  };
  if (!o.configFile) await Deno.writeTextFile(configPath, JSON.stringify(config, null, 2));
  const healthPath = join(stateDir, "health.json");
  await Deno.remove(healthPath).catch(() => {});
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(o.denoArgs ?? DAEMON_DENO_FLAGS),
      o.entry ?? join(ROOT, "main.ts"),
      "run",
      "--config",
      configPath,
      ...(o.args ?? []),
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1", ...o.env },
  }).spawn();
  const lines: string[] = [];
  const pump = (async () => {
    const dec = new TextDecoderStream();
    let buf = "";
    for await (const chunk of child.stderr.pipeThrough(dec)) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
    if (buf) lines.push(buf);
  })();
  const status = child.status.then(async (s) => {
    await pump.catch(() => {});
    return s;
  });
  let exited = false;
  status.then(() => (exited = true));

  const health = async () => {
    try {
      return JSON.parse(await Deno.readTextFile(healthPath));
    } catch {
      return null;
    }
  };
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  for (;;) {
    const h = await health();
    if (h && h.pid === child.pid && (o.waitConnected === false || h.nats?.connected)) break;
    if (exited) {
      throw new Error(`node exited early:\n${lines.slice(-20).join("\n")}`);
    }
    if (Date.now() > deadline) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      throw new Error(`node did not become ready:\n${lines.slice(-20).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
    }
    const t = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 15_000);
    const s = await status;
    clearTimeout(t);
    return s.code;
  };
  const kill = async () => {
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }
    await status;
  };
  return {
    stateDir,
    configPath,
    site,
    node,
    pid: child.pid,
    child,
    logs: () => lines,
    health,
    stop,
    kill,
    status,
    async [Symbol.asyncDispose]() {
      await stop();
      if (ownDir) await Deno.remove(stateDir, { recursive: true }).catch(() => {});
    },
  };
}

/** Polls `fn` until it returns a truthy value or the timeout passes. */
export async function waitFor<T>(
  fn: () => Promise<T> | T,
  timeoutMs = 20_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
