/**
 * Starts a real 3-server (by default) JetStream cluster on loopback for a test: one cluster
 * name, full-mesh routes, a store dir per server, random client/monitor/leafnode ports
 * (`-1`, read back from the ports file and `/varz`), and kill/restart of any one server on
 * its same ports and store. In operator mode (`operatorHome`) every server gets the
 * operator, system account and a full resolver with its own resolver dir, as
 * `mr-saas operator init` writes them.
 *
 * @module
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { join } from "node:path";
import { natsServerBin } from "./nats_server.ts";
import { operatorConfigLines } from "../../provisioner/operator.ts";

/** Options for {@linkcode startNatsCluster}. */
export interface NatsClusterOptions {
  /** Number of servers. @default {3} */
  size?: number;
  /** Cluster name. @default {"mr"} */
  name?: string;
  /** A `mr-saas operator init` home: run the cluster in operator mode with its keys. */
  operatorHome?: string;
  /** Every server also listens for leaf nodes (random port, see `leafPort`). */
  leafnodes?: boolean;
  /** Extra config text for every server. */
  config?: string;
  /** Readiness timeout (per start). @default {20000} */
  timeoutMs?: number;
  /** Server output on stderr. @default {false} */
  verbose?: boolean;
}

/** One server of the cluster. */
export interface ClusterMember {
  readonly index: number;
  /** `server_name`, as JetStream reports a stream's leader: `s0`, `s1`, … */
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly monitorPort: number;
  readonly clusterPort: number;
  /** Leaf node port (with `leafnodes: true`), else -1. */
  readonly leafPort: number;
  readonly running: boolean;
  readonly pid: number;
}

/** A running cluster; dispose to stop every server and remove the temp dir. */
export interface NatsCluster extends AsyncDisposable {
  readonly name: string;
  readonly members: readonly ClusterMember[];
  /** Client URLs of every server (running or not), for a node's `nats.servers`. */
  readonly urls: string[];
  readonly dir: string;
  /** The member whose client port is `port` (e.g. from `nc.getServer()`), or -1. */
  indexOfPort(port: number): number;
  /** The member serving a `host:port` / URL string, or -1. */
  indexOfServer(server: string): number;
  /** Index of the current leader of `stream` (asked through `nc`). */
  streamLeader(nc: NatsConnection, stream: string): Promise<number>;
  /**
   * Makes member `index` the leader of `stream` by asking the current leader to step down
   * until the election lands there (the replicas must include it). Returns the tries used.
   */
  moveStreamLeader(nc: NatsConnection, stream: string, index: number): Promise<number>;
  /** SIGKILL (default) or SIGTERM one server and wait for it to exit. Its store stays. */
  kill(index: number, signal?: "SIGKILL" | "SIGTERM"): Promise<void>;
  /**
   * Starts a stopped server again (same ports and store); waits until it is healthy (every
   * stream current, ~5 s after a kill on this VM). With `current: false` it returns once the
   * server has its routes and JetStream is up, while its streams still catch up: enough for
   * quorum (a catching-up replica votes), and the next kill may follow.
   */
  restart(index: number, options?: { current?: boolean }): Promise<void>;
  /** Waits until every running server answers `/healthz` with JetStream current. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** A connection to all servers that follows the cluster (admin use in tests). */
  connect(options?: Record<string, unknown>): Promise<NatsConnection>;
}

interface Member {
  index: number;
  name: string;
  dir: string;
  port: number;
  monitorPort: number;
  clusterPort: number;
  leafPort: number;
  child: Deno.ChildProcess | null;
}

/** Starts the cluster and waits until JetStream has a meta leader and every server is current. */
export async function startNatsCluster(o: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = o.size ?? 3;
  const cname = o.name ?? "mr";
  const timeoutMs = o.timeoutMs ?? 20_000;
  const dir = await Deno.makeTempDir({ prefix: "mr-cluster-" });
  const operator = o.operatorHome ? await operatorConfigLines(o.operatorHome) : "";
  // Routes must be known before the first server starts (a JetStream cluster refuses to
  // start without them), so cluster ports are picked up front; the rest are `-1`.
  const members: Member[] = Array.from({ length: size }, (_, i) => ({
    index: i,
    name: `s${i}`,
    dir: join(dir, `s${i}`),
    port: -1,
    monitorPort: -1,
    clusterPort: freePort(),
    leafPort: -1,
    child: null,
  }));

  const configOf = (m: Member) => {
    const routes = members.filter((x) => x !== m).map((x) =>
      `"nats-route://127.0.0.1:${x.clusterPort}"`
    );
    // each server its own resolver dir: a full resolver keeps its own copy of the JWTs
    const op = operator.replace(/dir: "[^"]*"/, `dir: "${join(m.dir, "resolver")}"`);
    return [
      `server_name: ${m.name}`,
      `listen: "127.0.0.1:${m.port}"`,
      `http: "127.0.0.1:${m.monitorPort}"`,
      `ports_file_dir: "${join(m.dir, "ports")}"`,
      `cluster { name: ${cname}, listen: "127.0.0.1:${m.clusterPort}", routes: [${
        routes.join(", ")
      }] }`,
      o.leafnodes ? `leafnodes { listen: "127.0.0.1:${m.leafPort}" }` : "",
      `jetstream { store_dir: "${join(m.dir, "js")}" }`,
      op,
      o.config ?? "",
    ].join("\n") + "\n";
  };

  const spawn = async (m: Member) => {
    await Deno.mkdir(join(m.dir, "ports"), { recursive: true });
    for await (const e of Deno.readDir(join(m.dir, "ports"))) {
      await Deno.remove(join(m.dir, "ports", e.name));
    }
    await Deno.writeTextFile(join(m.dir, "server.conf"), configOf(m));
    m.child = new Deno.Command(natsServerBin(), {
      args: ["-c", join(m.dir, "server.conf")],
      stdout: o.verbose ? "inherit" : "null",
      stderr: o.verbose ? "inherit" : "null",
      stdin: "null",
    }).spawn();
  };

  const learnPorts = async (m: Member, deadline: number) => {
    while (Date.now() < deadline) {
      const p = await readPorts(join(m.dir, "ports"));
      if (p) {
        m.port = p.port;
        m.monitorPort = p.monitor;
        if (o.leafnodes && m.leafPort < 0) {
          const v = await varz(m.monitorPort);
          const lp = (v?.leaf as { port?: number } | undefined)?.port ?? 0;
          if (lp > 0) m.leafPort = lp;
          else {
            await sleep(25);
            continue;
          }
        }
        return;
      }
      await sleep(25);
    }
    throw new Error(`nats-server ${m.name} wrote no ports file within ${timeoutMs} ms`);
  };

  const waitHealthy = async (ms = timeoutMs) => {
    const deadline = Date.now() + ms;
    for (const m of members) {
      if (!m.child) continue;
      for (;;) {
        if (await healthy(m.monitorPort, size)) break;
        if (Date.now() > deadline) {
          throw new Error(`nats-server ${m.name} not healthy within ${ms} ms (dir "${dir}")`);
        }
        await sleep(50);
      }
    }
  };

  const kill = async (i: number, signal: "SIGKILL" | "SIGTERM" = "SIGKILL") => {
    const m = members[i];
    if (!m) throw new RangeError(`No cluster member ${i}`);
    const c = m.child;
    if (!c) return;
    m.child = null;
    try {
      c.kill(signal);
    } catch { /* gone */ }
    const t = setTimeout(() => {
      try {
        c.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5_000);
    await c.status;
    clearTimeout(t);
  };

  try {
    const deadline = Date.now() + timeoutMs;
    for (const m of members) await spawn(m);
    for (const m of members) await learnPorts(m, deadline);
    await waitHealthy();
  } catch (err) {
    for (const m of members) await kill(m.index);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }

  const view = (m: Member): ClusterMember => ({
    index: m.index,
    name: m.name,
    get url() {
      return `nats://127.0.0.1:${m.port}`;
    },
    get port() {
      return m.port;
    },
    get monitorPort() {
      return m.monitorPort;
    },
    clusterPort: m.clusterPort,
    get leafPort() {
      return m.leafPort;
    },
    get running() {
      return m.child !== null;
    },
    get pid() {
      return m.child?.pid ?? -1;
    },
  });
  const views = members.map(view);
  const indexOfPort = (port: number) => members.findIndex((m) => m.port === port);

  return {
    name: cname,
    members: views,
    get urls() {
      return members.map((m) => `nats://127.0.0.1:${m.port}`);
    },
    dir,
    indexOfPort,
    indexOfServer(server: string) {
      const port = Number(/:(\d+)\/?$/.exec(server)?.[1] ?? -1);
      return indexOfPort(port);
    },
    async streamLeader(nc, stream) {
      const si = await (await jetstreamManager(nc)).streams.info(stream);
      const leader = si.cluster?.leader;
      return members.findIndex((m) => m.name === leader);
    },
    async moveStreamLeader(nc, stream, index) {
      const want = members[index]?.name;
      if (!want) throw new RangeError(`No cluster member ${index}`);
      const jsm = await jetstreamManager(nc);
      for (let tries = 0; tries < 30; tries++) {
        const si = await jsm.streams.info(stream).catch(() => null);
        const leader = si?.cluster?.leader;
        if (leader === want) return tries;
        if (leader) {
          await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, {
            timeout: 5_000,
          }).catch(() => {});
        }
        // the stepped-down leader's replicas elect a new one
        for (let i = 0; i < 50; i++) {
          await sleep(100);
          const now = (await jsm.streams.info(stream).catch(() => null))?.cluster?.leader;
          if (now && now !== leader) break;
        }
      }
      throw new Error(`Cannot move the leader of ${stream} to ${want}`);
    },
    kill,
    async restart(i, options = {}) {
      const m = members[i];
      if (!m) throw new RangeError(`No cluster member ${i}`);
      if (m.child) return;
      await spawn(m);
      await learnPorts(m, Date.now() + timeoutMs);
      if (options.current ?? true) return await waitHealthy();
      const deadline = Date.now() + timeoutMs;
      while (!(await healthy(m.monitorPort, size, false))) {
        if (Date.now() > deadline) throw new Error(`nats-server ${m.name} did not rejoin`);
        await sleep(50);
      }
    },
    waitHealthy,
    connect(options = {}) {
      return connect({
        servers: members.map((m) => `nats://127.0.0.1:${m.port}`),
        reconnectTimeWait: 200,
        maxReconnectAttempts: -1,
        ...options,
      });
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(members.map((m) => kill(m.index, "SIGTERM")));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function readPorts(dir: string): Promise<{ port: number; monitor: number } | null> {
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.name.endsWith(".ports")) continue;
      try {
        const j = JSON.parse(await Deno.readTextFile(join(dir, e.name)));
        const port = Number(new URL(j.nats[0].replace("nats://", "http://")).port);
        const monitor = Number(new URL(j.monitoring[0]).port);
        if (port > 0 && monitor > 0) return { port, monitor };
      } catch { /* partially written */ }
    }
  } catch { /* not yet created */ }
  return null;
}

async function varz(monitorPort: number): Promise<Record<string, unknown> | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${monitorPort}/varz`);
    return await r.json();
  } catch {
    return null;
  }
}

/** `/healthz` ok (JetStream current, or only enabled) and routes to every peer. */
async function healthy(monitorPort: number, size: number, current = true): Promise<boolean> {
  try {
    const h = await fetch(
      `http://127.0.0.1:${monitorPort}/healthz${current ? "" : "?js-enabled-only=true"}`,
    );
    await h.body?.cancel();
    if (!h.ok) return false;
    const r = await fetch(`http://127.0.0.1:${monitorPort}/routez`);
    const routes = (await r.json() as { routes?: { remote_id: string }[] }).routes ?? [];
    return new Set(routes.map((x) => x.remote_id)).size >= size - 1;
  } catch {
    return false;
  }
}
