/**
 * Starts a real `nats-server` for a test: random port (`-p -1` + ports file), temp
 * store dir, readiness poll, and `await using` disposal. Safe under `deno test --parallel`.
 *
 * @module
 */

/** Options for {@linkcode startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream. @default {true} */
  jetstream?: boolean;
  /** Extra config file text (e.g. operator mode, leafnodes); merged after the defaults. */
  config?: string;
  /** Fixed client port (a restart reuses the first port anyway). @default {-1 = random} */
  port?: number;
  /** Extra command-line arguments. */
  args?: string[];
  /** Readiness timeout. @default {10000} */
  timeoutMs?: number;
  /** Show server output on stderr (debugging). @default {false} */
  verbose?: boolean;
}

/** A running server; dispose to stop it and remove its temp dir. */
export interface NatsServer extends AsyncDisposable {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Monitoring port (`-m`), for `/varz` `/jsz`. */
  readonly monitorPort: number;
  /** Temp dir holding the config, JetStream store and ports file. */
  readonly dir: string;
  readonly pid: number;
  /**
   * Stops the process (SIGTERM, then SIGKILL after 5 s). Data stays for {@linkcode restart};
   * the port stays reserved (connections are closed at once) until then.
   */
  stop(): Promise<void>;
  /** Starts again on the same port with the same store. */
  restart(): Promise<void>;
  /** Resident memory of the server process in bytes (from /proc). */
  rss(): Promise<number>;
}

/** The `nats-server` binary (`NATS_SERVER_BIN` or PATH). */
export function natsServerBin(): string {
  return Deno.env.get("NATS_SERVER_BIN") ?? "nats-server";
}

/** Starts a server and waits until it accepts clients. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const dir = await Deno.makeTempDir({ prefix: "mr-nats-" });
  const storeDir = `${dir}/js`;
  const portsDir = `${dir}/ports`;
  await Deno.mkdir(portsDir);
  const js = options.jetstream ?? true;
  const conf = [
    `listen: "127.0.0.1:${options.port ?? -1}"`,
    `http: "127.0.0.1:-1"`,
    `ports_file_dir: "${portsDir}"`,
    js ? `jetstream { store_dir: "${storeDir}" }` : "",
    options.config ?? "",
  ].join("\n");
  await Deno.writeTextFile(`${dir}/server.conf`, conf);
  const timeoutMs = options.timeoutMs ?? 10_000;

  let child: Deno.ChildProcess;
  let port = -1;
  let monitorPort = -1;

  // While stopped, the client port is held by a listener that closes every connection at once
  // (clients see a server that is down): otherwise another test's `-p -1` server can get the
  // freed port, and this test's clients would talk to that server until the restart.
  let holder: Deno.Listener | null = null;
  let holding: Promise<void> = Promise.resolve();
  const hold = () => {
    try {
      holder = Deno.listen({ hostname: "127.0.0.1", port });
    } catch {
      return; // taken already: nothing to hold
    }
    const l = holder;
    holding = (async () => {
      for await (const conn of l) conn.close();
    })().catch(() => {});
  };
  const unhold = async () => {
    try {
      holder?.close();
    } catch { /* closed */ }
    holder = null;
    await holding;
  };

  const spawn = async () => {
    await unhold();
    for await (const e of Deno.readDir(portsDir)) await Deno.remove(`${portsDir}/${e.name}`);
    const cfg = port > 0 ? conf.replace(/^listen: .*$/m, `listen: "127.0.0.1:${port}"`) : conf;
    await Deno.writeTextFile(`${dir}/server.conf`, cfg);
    child = new Deno.Command(natsServerBin(), {
      args: ["-c", `${dir}/server.conf`, ...(options.args ?? [])],
      stdout: options.verbose ? "inherit" : "null",
      stderr: options.verbose ? "inherit" : "null",
      stdin: "null",
    }).spawn();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const ports = await readPorts(portsDir);
      if (ports) {
        port = ports.port;
        monitorPort = ports.monitor;
        if (await ready(monitorPort, js)) return;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    throw new Error(`nats-server did not become ready within ${timeoutMs} ms (dir "${dir}")`);
  };

  let running = false;
  const stop = async () => {
    if (!running) return;
    running = false;
    const exited = child.status;
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    const t = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5_000);
    await exited;
    clearTimeout(t);
    if (port > 0) hold();
  };

  await spawn();
  running = true;
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get monitorPort() {
      return monitorPort;
    },
    get pid() {
      return child.pid;
    },
    dir,
    stop,
    async restart() {
      await stop();
      await spawn();
      running = true;
    },
    async rss() {
      const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      return kb * 1024;
    },
    async [Symbol.asyncDispose]() {
      await stop();
      await unhold();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

async function readPorts(dir: string): Promise<{ port: number; monitor: number } | null> {
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".ports")) continue;
    try {
      const j = JSON.parse(await Deno.readTextFile(`${dir}/${e.name}`));
      const port = Number(new URL(j.nats[0].replace("nats://", "http://")).port);
      const monitor = Number(new URL(j.monitoring[0]).port);
      if (port > 0 && monitor > 0) return { port, monitor };
    } catch { /* partially written */ }
  }
  return null;
}

async function ready(monitorPort: number, js: boolean): Promise<boolean> {
  try {
    const r = await fetch(
      `http://127.0.0.1:${monitorPort}/healthz${js ? "?js-enabled-only=true" : ""}`,
    );
    await r.body?.cancel();
    return r.ok;
  } catch {
    return false;
  }
}

/** A fresh temp directory removed on dispose. */
export async function tempDir(prefix = "mr-test-"): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}
