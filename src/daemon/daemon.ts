/**
 * The edge daemon (`machine-room run`): NATS connection, durable spool + replicator,
 * lifecycle events, facts, commands, health, and the pluggable {@linkcode DaemonModule}s
 * (agents, election, governors, renewal, metrics exporters).
 *
 * Everything leaving the node is spooled first (`<state_dir>/spool.db`), so the daemon
 * runs — and loses nothing — with the SaaS unreachable from its first second.
 *
 * Local files under `state_dir` (directory 0700):
 * - `spool.db` (+ WAL): the durable outbox.
 * - `health.json`: the health document, rewritten every 2 s (`machine-room status`).
 * - `daemon.pid`: the running daemon's pid (a second daemon on the same dir is refused).
 * - `outbox/*.json`: submissions dropped by `machine-room submit`, imported into the spool.
 * - `spool-requests/*.json`: `machine-room spool dead-letters` requests, answered here.
 *
 * @module
 */
import { createHostSampler } from "../metrics/host.ts";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { join } from "node:path";
import type { NodeConfig } from "../config/schema.ts";
import { serveCommands } from "../commands/mod.ts";
import { createOutbox } from "../events/mod.ts";
import { collectFacts } from "../facts/mod.ts";
import type { Logger } from "../log/logger.ts";
import {
  type ConnectionStats,
  type NodeConnection,
  nodeInboxPrefix,
  startConnection,
} from "../nats/connect.ts";
import { createReplicator, type Replicator } from "../replicator/mod.ts";
import { openSpool, type Spool } from "../spool/mod.ts";
import { serveSpoolRequests } from "../spool/requests.ts";
import { diskBudget } from "../spool/disk_budget.ts";
import { parseDuration } from "../util/duration.ts";
import { ulid } from "../util/ulid.ts";
import type { CommandHandler, DaemonContext, DaemonModule } from "./types.ts";
import type { ConnectionOptions } from "@nats-io/transport-node";
import { atomicWrite } from "../util/atomic_write.ts";

/** Overall status in the health document. */
export type HealthStatus = "healthy" | "degraded" | "unhealthy" | "stopped";

/** The health document (`health` command, `machine-room status --json`). */
export interface HealthDoc {
  status: HealthStatus;
  /** Why the status is not healthy. */
  reasons: string[];
  customer: string;
  site: string;
  node: string;
  version: string;
  pid: number;
  started_at: string;
  uptime_s: number;
  time: string;
  nats: ConnectionStats;
  spool: {
    depth: number;
    bytes: number;
    max_bytes: number;
    oldest_unsent_age_ms: number | null;
    dropped: number;
    expired: number;
    /** Messages parked in the dead-letter table (`machine-room spool dead-letters`). */
    dead_letters: number;
    dead_letters_dropped: number;
  };
  replicator: {
    sent: number;
    failures: number;
    duplicates: number;
    parked: number;
    held: number;
    last_error: string | null;
    last_sent_at: string | null;
  };
  /** The heartbeat and facts intervals in force (config, or the signed spec's `settings`). */
  settings: { facts_interval: string; heartbeat_interval: string };
  agents: unknown;
  memory: { rss: number; heap_used: number };
  modules: Record<string, unknown>;
}

/** Options for {@linkcode startDaemon}. */
export interface DaemonOptions {
  config: NodeConfig;
  logger: Logger;
  modules?: DaemonModule[];
  version?: string;
  /** Connection option overrides (tests). */
  connection?: Partial<ConnectionOptions>;
  /** How often `health.json` is rewritten. @default {2000} */
  healthFileIntervalMs?: number;
}

/** A running daemon. */
export interface Daemon {
  readonly context: DaemonContext;
  health(): HealthDoc;
  /** Graceful stop: modules, shutdown event, spool flush (≤ `flushMs`), close. */
  stop(reason?: string, flushMs?: number): Promise<void>;
  /** Resolves when stopped. */
  readonly stopped: Promise<void>;
  /** The spool (tests and benchmarks). */
  readonly spool: Spool;
  readonly replicator: Replicator;
}

const enc = new TextEncoder();
const DEFAULT_SPOOL_CAP = 256 * 1024 * 1024;
/** The compact agent list a heartbeat carries (the console's fleet view reads it). */
function aliveAgents(
  agents: unknown,
): { name: string; status: string; sha256: unknown; version: unknown }[] {
  const list = (agents as { agents?: unknown } | null)?.agents;
  if (!Array.isArray(list)) return [];
  return list.slice(0, 100).map((a: Record<string, unknown>) => ({
    name: String(a.name),
    status: String(a.status),
    sha256: a.sha256 ?? null,
    version: a.version ?? null,
  }));
}

/** Backlog age from which the node reports `degraded`. */
const BACKLOG_DEGRADED_MS = 120_000;

function pidAlive(pid: number): boolean {
  if (pid === Deno.pid) return false;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Starts the daemon; resolves once the spool is open and the modules are started. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config } = options;
  const version = options.version ?? "0.0.0";
  const log = options.logger.child({ site: config.site, node: config.node });
  const startedAt = new Date();
  const stateDir = config.state_dir;
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  await Deno.mkdir(join(stateDir, "outbox"), { recursive: true, mode: 0o700 });

  // one daemon per state dir
  const pidFile = join(stateDir, "daemon.pid");
  try {
    const other = Number((await Deno.readTextFile(pidFile)).trim());
    if (Number.isInteger(other) && other > 0 && pidAlive(other)) {
      throw new Error(
        `another daemon (pid ${other}) is running on state dir "${stateDir}"; stop it first`,
      );
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await atomicWrite(pidFile, `${Deno.pid}\n`, { mode: 0o644 });

  const spoolCap = config.spool?.max_bytes ?? DEFAULT_SPOOL_CAP;
  const spoolPath = join(stateDir, "spool.db");
  const spool = openSpool(spoolPath, { maxBytes: spoolCap, logger: log });
  // the spool's share of its disk (src/spool/disk_budget.ts), re-measured with each health
  let disk: { cap: number; available: number } = { cap: spoolCap, available: -1 };
  const measureDisk = async () => {
    const b = await diskBudget(spoolPath, spoolCap, spool.stats().bytes);
    if (!b) return;
    if (b.cap < spoolCap && b.cap !== disk.cap) {
      log.warn("spool capped by free disk space", { cap: b.cap, available: b.available });
    }
    disk = { cap: spool.limit(b.cap), available: b.available };
  };
  await measureDisk();
  const ttlMs = parseDuration(config.spool?.ttl ?? "7d");
  const outbox = createOutbox({ spool, config, defaultTtlMs: ttlMs });
  const conn: NodeConnection = startConnection(config, {
    logger: log,
    ...(options.connection ? { overrides: options.connection } : {}),
  });

  let jsCache: { nc: NatsConnection; js: JetStreamClient } | null = null;
  const replicator = createReplicator({
    spool,
    logger: log.child({ component: "replicator" }),
    js: () => {
      const nc = conn.current();
      if (!nc) return null;
      if (jsCache?.nc !== nc) jsCache = { nc, js: jetstream(nc) };
      return jsCache.js;
    },
    nc: () => conn.current(),
    inboxPrefix: nodeInboxPrefix(config),
  });

  const abort = new AbortController();
  const modules = options.modules ?? [];
  const byName = new Map(modules.map((m) => [m.name, m]));
  let facts: Record<string, unknown> = {};
  const factListeners = new Set<(f: Record<string, unknown>) => void>();
  const prefix = `mr.${config.site}.${config.node}`;

  const refreshFacts = async (): Promise<void> => {
    const f = await collectFacts({
      identity: { customer: config.customer, site: config.site, node: config.node },
      version,
      startedAt,
    });
    for (const m of modules) {
      try {
        Object.assign(f, m.facts?.() ?? {});
      } catch (err) {
        log.error("module facts failed", { module: m.name, error: (err as Error).message });
      }
    }
    facts = f;
    const t = Date.now();
    try {
      spool.append({
        id: ulid(),
        subject: `${prefix}.facts`,
        payload: enc.encode(JSON.stringify(f)),
        priority: 1,
        createdAt: t,
        expiresAt: t + Math.max(ttlMs, 86_400_000),
      });
    } catch (err) {
      log.warn("cannot spool facts", { error: (err as Error).message });
    }
    for (const l of factListeners) {
      try {
        l(f);
      } catch (err) {
        log.error("facts listener failed", { error: (err as Error).message });
      }
    }
  };

  // heartbeat and facts timers: the config's intervals, overridden live by the signed
  // spec's `settings` (applySettings)
  let settingsTimers: ReturnType<typeof setInterval>[] = [];
  let effectiveSettings = { ...config.settings };
  let factsRunning = false;
  let timersStarted = false;
  const hostSample = createHostSampler();
  const startSettingsTimers = () => {
    timersStarted = true;
    settingsTimers.forEach(clearInterval);
    settingsTimers = [
      setInterval(() => {
        const h = health();
        outbox.event("lifecycle", "alive", {
          status: h.status,
          uptime_s: h.uptime_s,
          spool_depth: h.spool.depth,
          rss: h.memory.rss,
          dead_letters: h.spool.dead_letters,
          agents: aliveAgents(h.agents),
        }, { priority: 2 }).catch((err) => log.warn("cannot spool alive", { error: String(err) }));
        for (const m of hostSample(h.spool.depth)) {
          outbox.metric(m).catch((err) => log.warn("cannot spool metric", { error: String(err) }));
        }
      }, parseDuration(effectiveSettings.heartbeat_interval)),
      setInterval(() => {
        if (factsRunning) return;
        factsRunning = true;
        refreshFacts().catch((err) => log.error("facts failed", { error: String(err) }))
          .finally(() => factsRunning = false);
      }, parseDuration(effectiveSettings.facts_interval)),
    ];
  };
  const applySettings: DaemonContext["applySettings"] = (s) => {
    const next = {
      facts_interval: s.facts_interval ?? config.settings.facts_interval,
      heartbeat_interval: s.heartbeat_interval ?? config.settings.heartbeat_interval,
    };
    if (
      next.facts_interval === effectiveSettings.facts_interval &&
      next.heartbeat_interval === effectiveSettings.heartbeat_interval
    ) return;
    effectiveSettings = next;
    log.info("settings applied", next);
    if (timersStarted && !abort.signal.aborted) startSettingsTimers();
  };

  const context: DaemonContext = {
    config,
    logger: log,
    outbox,
    nats: () => conn.ready(),
    natsNow: () => conn.current(),
    facts: () => facts,
    onFacts(listener) {
      factListeners.add(listener);
      return () => factListeners.delete(listener);
    },
    refreshFacts: () => refreshFacts(),
    applySettings: (settings) => applySettings(settings),
    signal: abort.signal,
    module<T extends DaemonModule>(name: string) {
      return byName.get(name) as T | undefined;
    },
  };

  const health = (): HealthDoc => {
    const ss = spool.stats();
    const rs = replicator.stats();
    const ns = conn.stats();
    const mods: Record<string, unknown> = {};
    for (const m of modules) {
      try {
        if (m.health) mods[m.name] = m.health();
      } catch (err) {
        mods[m.name] = { error: (err as Error).message };
      }
    }
    const reasons: string[] = [];
    let status: HealthStatus = "healthy";
    const degrade = (why: string) => {
      reasons.push(why);
      if (status === "healthy") status = "degraded";
    };
    if (!ns.connected) degrade("not connected to NATS");
    if (ss.oldestAgeMs !== null && ss.oldestAgeMs > BACKLOG_DEGRADED_MS) {
      degrade(`oldest unsent message is ${Math.round(ss.oldestAgeMs / 1000)} s old`);
    }
    if (ss.dropped > 0) degrade(`${ss.dropped} spooled messages dropped (spool full)`);
    if (ss.deadLettersDropped > 0) {
      degrade(`${ss.deadLettersDropped} dead letters deleted (dead-letter table full)`);
    }
    if (ss.deadLetters > 0) {
      degrade(`${ss.deadLetters} messages refused by JetStream, parked as dead letters`);
    }
    if (disk.cap < spoolCap && ss.bytes >= disk.cap * 0.9) {
      degrade(
        `spool limited to ${disk.cap} bytes by free disk space (${disk.available} bytes free)`,
      );
    }
    if (ss.bytes >= spoolCap * 0.9) {
      reasons.push("spool is over 90% of its cap");
      status = "unhealthy";
    }
    for (const [name, h] of Object.entries(mods)) {
      const st = (h as { status?: string } | null)?.status;
      if (st === "unhealthy") {
        reasons.push(`${name} is unhealthy`);
        status = "unhealthy";
      } else if (st === "degraded") degrade(`${name} is degraded`);
    }
    const mem = Deno.memoryUsage();
    return {
      status,
      reasons,
      customer: config.customer,
      site: config.site,
      node: config.node,
      version,
      pid: Deno.pid,
      started_at: startedAt.toISOString(),
      uptime_s: Math.round((Date.now() - startedAt.getTime()) / 1000),
      time: new Date().toISOString(),
      nats: ns,
      spool: {
        depth: ss.depth,
        bytes: ss.bytes,
        max_bytes: disk.cap,
        oldest_unsent_age_ms: ss.oldestAgeMs,
        dropped: ss.dropped,
        expired: ss.expired,
        dead_letters: ss.deadLetters,
        dead_letters_dropped: ss.deadLettersDropped,
      },
      replicator: {
        sent: rs.sent,
        failures: rs.failures,
        duplicates: rs.duplicates,
        parked: rs.parked,
        held: rs.held,
        last_error: rs.lastError ?? null,
        last_sent_at: rs.lastSentAt ? new Date(rs.lastSentAt).toISOString() : null,
      },
      settings: { ...effectiveSettings },
      agents: mods["agents"] ?? null,
      memory: { rss: mem.rss, heap_used: mem.heapUsed },
      modules: mods,
    };
  };

  const builtinCommands: Record<string, CommandHandler> = {
    ping: () =>
      Promise.resolve({
        pong: true,
        site: config.site,
        node: config.node,
        time: new Date().toISOString(),
      }),
    health: () => Promise.resolve(health()),
    facts: () => Promise.resolve(facts),
  };
  const handlers = (): Record<string, CommandHandler> => {
    const all: Record<string, CommandHandler> = { ...builtinCommands };
    for (const m of modules) {
      try {
        Object.assign(all, m.commands?.() ?? {});
      } catch (err) {
        log.error("module commands failed", { module: m.name, error: (err as Error).message });
      }
    }
    if (!all["agents"]) all["agents"] = () => Promise.resolve([]);
    return all;
  };

  let cmdSub: Subscription | null = null;
  conn.onConnect((nc, fresh) => {
    replicator.kick();
    if (fresh) {
      cmdSub = serveCommands(nc, prefix, handlers, log.child({ component: "commands" }));
    }
  });

  // submissions dropped by `machine-room submit` (another process) are imported here
  const outboxDir = join(stateDir, "outbox");
  let importing = false;
  const importDrops = async () => {
    if (importing) return;
    importing = true;
    try {
      for await (const e of Deno.readDir(outboxDir)) {
        if (!e.isFile || !e.name.endsWith(".json")) continue;
        const p = join(outboxDir, e.name);
        try {
          const doc = JSON.parse(await Deno.readTextFile(p)) as {
            subject: string;
            payload: unknown;
            priority?: number;
            ttl_ms?: number;
          };
          // the file name is the message id, so a crash between spooling and removing
          // the file re-imports the same id (spool ignores it; JetStream de-duplicates)
          await outbox.submit(doc.subject, doc.payload, {
            id: e.name.slice(0, -5),
            ...(doc.priority !== undefined ? { priority: doc.priority } : {}),
            ...(doc.ttl_ms !== undefined ? { ttlMs: doc.ttl_ms } : {}),
          });
        } catch (err) {
          log.warn("rejected dropped submission", { file: e.name, error: (err as Error).message });
          await Deno.rename(p, `${p}.rejected`).catch(() => {});
          continue;
        }
        await Deno.remove(p).catch(() => {});
      }
    } catch (err) {
      log.warn("cannot import submissions", { error: (err as Error).message });
    } finally {
      importing = false;
    }
  };

  // --- start ---
  replicator.start();
  await outbox.event("lifecycle", "startup", {
    version,
    pid: Deno.pid,
    deno: Deno.version.deno,
    started_at: startedAt.toISOString(),
  }, { priority: 1 });
  log.info("daemon starting", { version, state_dir: stateDir, servers: config.nats.servers });
  await refreshFacts().catch((err) => log.error("facts failed", { error: String(err) }));

  const started: DaemonModule[] = [];
  for (const m of modules) {
    try {
      await m.start(context);
      started.push(m);
    } catch (err) {
      log.error("module failed to start", { module: m.name, error: (err as Error).message });
      await outbox.event("lifecycle", "module_failed", {
        module: m.name,
        error: (err as Error).message,
      }).catch(() => {});
    }
  }

  const timers: ReturnType<typeof setInterval>[] = [];
  startSettingsTimers();
  const healthFile = join(stateDir, "health.json");
  const writeHealth = (doc: HealthDoc) =>
    atomicWrite(healthFile, JSON.stringify(doc) + "\n", { mode: 0o644 }).catch((err) =>
      log.warn("cannot write health.json", { error: String(err) })
    );
  timers.push(setInterval(() => {
    measureDisk().catch(() => {}).finally(() => writeHealth(health()));
  }, options.healthFileIntervalMs ?? 2000));
  timers.push(setInterval(importDrops, 1000));
  // `machine-room spool dead-letters` while the daemon holds the spool
  let answering = false;
  timers.push(setInterval(() => {
    if (answering) return;
    answering = true;
    serveSpoolRequests(stateDir, spool, log).finally(() => answering = false);
  }, 250));
  await writeHealth(health());
  importDrops(); // a large backlog of dropped submissions must not delay the start
  log.info("daemon started", { modules: started.map((m) => m.name) });

  let stopping: Promise<void> | null = null;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));

  const stop = (reason = "stop", flushMs = 3000): Promise<void> => {
    if (stopping) return stopping;
    stopping = (async () => {
      log.info("daemon stopping", { reason });
      timers.forEach(clearInterval);
      settingsTimers.forEach(clearInterval);
      abort.abort();
      for (const m of [...started].reverse()) {
        await Promise.race([
          m.stop().catch((err) =>
            log.error("module stop failed", { module: m.name, error: String(err) })
          ),
          new Promise((r) => setTimeout(r, 5000)),
        ]);
      }
      await outbox.event("lifecycle", "shutdown", {
        reason,
        uptime_s: Math.round((Date.now() - startedAt.getTime()) / 1000),
      }, { priority: 1 }).catch(() => {});
      const flushed = conn.current() ? await replicator.flush(flushMs) : false;
      await replicator.stop();
      try {
        cmdSub?.unsubscribe();
      } catch { /* closed */ }
      await conn.close();
      const final = health();
      final.status = "stopped";
      final.reasons = [reason];
      await writeHealth(final);
      spool.close();
      await Deno.remove(pidFile).catch(() => {});
      log.info("daemon stopped", { flushed, unsent: final.spool.depth });
      resolveStopped();
    })();
    return stopping;
  };

  return {
    context,
    health,
    stop,
    stopped,
    spool,
    replicator,
  };
}
