/**
 * The node's NATS connection: built from the node config (servers, creds, TLS), with an
 * inbox prefix scoped to the node (`_INBOX.<site>.<node>`) so user permissions can limit
 * subscriptions to it. {@linkcode startConnection} keeps trying from the first second —
 * a node that boots offline still runs and spools — with jittered exponential backoff,
 * and once connected relies on the client's own reconnect (forever, jittered).
 *
 * @module
 */
import {
  connect,
  type ConnectionOptions,
  credsAuthenticator,
  type NatsConnection,
} from "@nats-io/transport-node";
import type { NodeConfig } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { jittered } from "../util/backoff.ts";
import { type Clock, systemClock } from "../util/clock.ts";

/** The inbox prefix of a node: `_INBOX.<site>.<node>`. */
export function nodeInboxPrefix(c: { site: string; node: string }): string {
  return `_INBOX.${c.site}.${c.node}`;
}

/** Connection options for a node config (reads the creds file). */
export async function natsOptions(
  config: Pick<NodeConfig, "nats" | "site" | "node">,
  name = `machine-room ${config.site}.${config.node}`,
): Promise<ConnectionOptions> {
  const opts: ConnectionOptions = {
    servers: config.nats.servers,
    name,
    inboxPrefix: nodeInboxPrefix(config),
    timeout: 5_000,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    reconnectJitter: 500,
    reconnectJitterTLS: 1_000,
    pingInterval: 20_000,
    maxPingOut: 3,
  };
  if (config.nats.creds) {
    let creds: Uint8Array;
    try {
      creds = await Deno.readFile(config.nats.creds);
    } catch (err) {
      throw new Error(
        `Cannot read NATS creds file "${config.nats.creds}": ${(err as Error).message}`,
      );
    }
    const path = config.nats.creds;
    // re-read on every (re)connect: credential renewal replaces the file
    opts.authenticator = credsAuthenticator(() => {
      try {
        creds = Deno.readFileSync(path);
      } catch { /* keep the last readable creds */ }
      return creds;
    });
  }
  const tls = config.nats.tls;
  if (tls) {
    opts.tls = {
      ...(tls.ca ? { caFile: tls.ca } : {}),
      ...(tls.cert ? { certFile: tls.cert } : {}),
      ...(tls.key ? { keyFile: tls.key } : {}),
    };
  }
  return opts;
}

/** Connects once (for short-lived CLI commands); rejects if the server is unreachable. */
export async function connectNode(
  config: Pick<NodeConfig, "nats" | "site" | "node">,
  name?: string,
): Promise<NatsConnection> {
  const opts = await natsOptions(config, name);
  return await connect({ ...opts, reconnect: false });
}

/** Counters of the node connection (part of the health document). */
export interface ConnectionStats {
  connected: boolean;
  server: string | null;
  /** Successful reconnects plus fresh connects after the first. */
  reconnects: number;
  in_msgs: number;
  out_msgs: number;
  in_bytes: number;
  out_bytes: number;
  last_error: string | null;
  /** When the current disconnected period began (ms epoch), null while connected. */
  disconnected_since: number | null;
}

/** A connection that is (re)established in the background. */
export interface NodeConnection {
  /** The live connection or `null` while disconnected. */
  current(): NatsConnection | null;
  /** Resolves with the connection once connected (immediately if connected). */
  ready(): Promise<NatsConnection>;
  /**
   * Called with every new connection object (the first connect, and a fresh connect
   * after the client gave up) and on every reconnect; returns an unsubscribe function.
   */
  onConnect(listener: (nc: NatsConnection, fresh: boolean) => void): () => void;
  stats(): ConnectionStats;
  /** Drains and closes; stops reconnecting. */
  close(): Promise<void>;
}

/** Options of {@linkcode startConnection}. */
export interface StartConnectionOptions {
  logger: Logger;
  /** @default {{minMs: 500, maxMs: 30000}} */
  backoff?: { minMs: number; maxMs: number };
  /** Connection options override (tests). */
  overrides?: Partial<ConnectionOptions>;
  /** Clock of the retry loop. @default {systemClock} */
  clock?: Clock;
}

/** Starts connecting in the background; never throws for network errors. */
export function startConnection(
  config: Pick<NodeConfig, "nats" | "site" | "node">,
  options: StartConnectionOptions,
): NodeConnection {
  const log = options.logger.child({ component: "nats" });
  const backoff = options.backoff ?? { minMs: 500, maxMs: 30_000 };
  let nc: NatsConnection | null = null;
  let connected = false;
  let closed = false;
  let reconnects = 0;
  let everConnected = false;
  let lastError: string | null = null;
  const clock = options.clock ?? systemClock;
  let disconnectedSince: number | null = clock.now();
  let wake: (() => void) | null = null;
  const listeners = new Set<(nc: NatsConnection, fresh: boolean) => void>();
  let waiters: ((nc: NatsConnection) => void)[] = [];
  // counters of closed connection objects, so stats stay monotonic across fresh connects
  const base = { inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0 };

  const notify = (c: NatsConnection, fresh: boolean) => {
    connected = true;
    disconnectedSince = null;
    const ws = waiters;
    waiters = [];
    ws.forEach((w) => w(c));
    for (const l of listeners) {
      try {
        l(c, fresh);
      } catch (err) {
        log.error("connect listener failed", { error: (err as Error).message });
      }
    }
  };

  const watch = async (c: NatsConnection) => {
    for await (const s of c.status()) {
      switch (s.type) {
        case "disconnect":
          connected = false;
          disconnectedSince ??= clock.now();
          log.warn("disconnected from NATS", { server: s.server });
          break;
        case "reconnect":
          reconnects++;
          log.info("reconnected to NATS", { server: s.server });
          notify(c, false);
          break;
        case "error":
          lastError = String(s.error?.message ?? s.error);
          log.warn("NATS error", { error: lastError });
          break;
        case "ldm":
          log.warn("NATS server entering lame duck mode");
          break;
      }
    }
  };

  const loop = async () => {
    let delay = backoff.minMs;
    while (!closed) {
      let c: NatsConnection;
      try {
        const opts = await natsOptions(config);
        c = await connect({ ...opts, ...options.overrides });
      } catch (err) {
        lastError = (err as Error).message;
        const wait = jittered(delay);
        log.warn("cannot connect to NATS; retrying", { error: lastError, retry_ms: wait });
        await new Promise<void>((r) => {
          const t = clock.setTimeout(r, wait);
          wake = () => {
            clock.clearTimeout(t);
            r();
          };
        });
        wake = null;
        delay = Math.min(delay * 2, backoff.maxMs);
        continue;
      }
      if (closed) {
        await c.close().catch(() => {});
        return;
      }
      delay = backoff.minMs;
      nc = c;
      if (everConnected) reconnects++;
      everConnected = true;
      log.info("connected to NATS", { server: c.getServer() });
      watch(c).catch(() => {});
      notify(c, true);
      const err = await c.closed();
      const st = c.stats();
      base.inMsgs += st.inMsgs;
      base.outMsgs += st.outMsgs;
      base.inBytes += st.inBytes;
      base.outBytes += st.outBytes;
      nc = null;
      connected = false;
      disconnectedSince ??= clock.now();
      if (err) {
        lastError = err.message;
        log.warn("NATS connection closed", { error: err.message });
      }
    }
  };
  loop().catch((err) => log.error("connection loop failed", { error: String(err) }));

  return {
    current: () => (connected ? nc : null),
    ready() {
      if (connected && nc) return Promise.resolve(nc);
      return new Promise((resolve) => waiters.push(resolve));
    },
    onConnect(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stats() {
      const st = nc?.stats() ?? { inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0 };
      return {
        connected,
        server: connected && nc ? nc.getServer() : null,
        reconnects,
        in_msgs: base.inMsgs + st.inMsgs,
        out_msgs: base.outMsgs + st.outMsgs,
        in_bytes: base.inBytes + st.inBytes,
        out_bytes: base.outBytes + st.outBytes,
        last_error: lastError,
        disconnected_since: disconnectedSince,
      };
    },
    async close() {
      closed = true;
      wake?.();
      const c = nc;
      nc = null;
      connected = false;
      if (c) {
        await c.drain().catch(() => c.close().catch(() => {}));
      }
    },
  };
}
