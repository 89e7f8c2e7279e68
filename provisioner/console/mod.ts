/**
 * `mr-saas console`: the fleet console, a web application served by the vendor CLI.
 *
 * ```ts
 * import { startConsole } from "./provisioner/console/mod.ts";
 * await using c = await startConsole({ connections: new Map([["acme", nc]]) });
 * console.log(c.loginUrl); // open it once: it sets the session cookie
 * ```
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { createSessions, randomToken } from "./auth.ts";
import { ensureBundle } from "./bundle.ts";
import { readRollouts } from "./rollouts.ts";
import { createHandler, type RolloutView } from "./server.ts";
import { createFleetView, type FleetView, type FleetViewOptions } from "./view.ts";

/** Options of {@linkcode startConsole}. */
export interface ConsoleOptions {
  /** One NATS connection per customer account (name → connection). */
  connections: Map<string, NatsConnection>;
  /** @default {"127.0.0.1"} */
  hostname?: string;
  /** @default {8480} (0 picks a free port) */
  port?: number;
  /** Reads the audit log of this vendor home (the Audit view); actions are audited there. */
  audit?: {
    read(): Promise<{ verify: Record<string, unknown>; records: Record<string, unknown>[] }>;
    append(record: Record<string, unknown>): Promise<void>;
  };
  /** The `/metrics` bearer token. @default {random} */
  metricsToken?: string;
  /** Session idle timeout. @default {3_600_000} */
  sessionIdleMs?: number;
  view?: FleetViewOptions;
  /** Writes a log line (JSON) for audit records without a vendor home. @default {stderr} */
  log?: (line: string) => void;
}

/** A running console. */
export interface RunningConsole extends AsyncDisposable {
  url: string;
  /** Open once to log in (sets the session cookie). */
  loginUrl: string;
  metricsToken: string;
  view: FleetView;
  close(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** Starts the console server. */
export async function startConsole(o: ConsoleOptions): Promise<RunningConsole> {
  const hostname = o.hostname ?? "127.0.0.1";
  const view = createFleetView(o.connections, o.view ?? {});
  const sessions = createSessions(o.sessionIdleMs ? { idleMs: o.sessionIdleMs } : {});
  const metricsToken = o.metricsToken ?? randomToken();
  const bundle = await ensureBundle();
  const log = o.log ?? ((l: string) => console.error(l));
  const cache = new Map<string, { at: number; p: Promise<RolloutView[]> }>();
  let port = 0;
  const shutdown = new AbortController();
  const handler = createHandler({
    shutdown: shutdown.signal,
    view,
    sessions,
    metricsToken,
    bundle,
    get allowedHosts() {
      if (!LOOPBACK.has(hostname)) return null;
      return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
    },
    rollouts(customer) {
      const c = cache.get(customer);
      if (c && Date.now() - c.at < 1_000) return c.p;
      const p = readRollouts(view, customer);
      cache.set(customer, { at: Date.now(), p });
      p.catch(() => cache.delete(customer));
      return p;
    },
    audit: async () => (o.audit ? await o.audit.read() : null),
    async record(entry) {
      if (o.audit) return await o.audit.append(entry);
      log(
        JSON.stringify({
          ts: new Date().toISOString(),
          level: "info",
          msg: "console action",
          audit: true,
          ...entry,
        }),
      );
    },
  });
  const server = Deno.serve({ hostname, port: o.port ?? 8480, onListen: () => {} }, handler);
  port = server.addr.port;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  const url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}`;
  await view.ready(5_000);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    shutdown.abort();
    await view.close();
    await server.shutdown();
  };
  return {
    url,
    loginUrl: `${url}/login?token=${sessions.loginToken}`,
    metricsToken,
    view,
    close,
    [Symbol.asyncDispose]: close,
  };
}

export { createFleetView } from "./view.ts";
export { renderMetrics } from "./prom.ts";
export type { FleetView, FleetViewOptions, NodeHealth, NodeRow } from "./view.ts";
