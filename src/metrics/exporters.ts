/**
 * The `metrics` daemon module: scrapes the Prometheus exporters listed in the node config
 * (`metrics.exporters[]`: `url`, `interval`, `include` regexes) and forwards the samples
 * through the outbox to `mr.<site>.<node>.metrics` (label `exporter` = the URL). A bad or
 * unreachable exporter is reported in health (`degraded`), never fatal; NaN/±Inf samples
 * are skipped (the metrics wire format carries finite numbers).
 *
 * @module
 */
import type { NodeConfig } from "../config/schema.ts";
import type { DaemonContext, DaemonModule } from "../daemon/types.ts";
import { parseDuration } from "../util/duration.ts";
import { parsePrometheusText } from "./prometheus.ts";

/** Health of one exporter. */
export interface ExporterHealth {
  url: string;
  status: "ok" | "failing" | "pending" | "invalid";
  last_ok: string | null;
  last_error: string | null;
  /** Samples forwarded by the last successful scrape. */
  samples: number;
  /** Lines the last scrape could not parse. */
  malformed: number;
  scrapes: number;
  failures: number;
}

interface Exporter {
  url: string;
  intervalMs: number;
  include: RegExp[] | null;
  health: ExporterHealth;
  timer?: ReturnType<typeof setInterval>;
  running: boolean;
}

/** Scrape timeout cap. */
const MAX_TIMEOUT_MS = 10_000;

/** Creates the module; `null` when no exporters are configured. */
export function createMetricsModule(
  config: Pick<NodeConfig, "metrics">,
  options: { fetchImpl?: typeof fetch } = {},
): DaemonModule | null {
  const list = config.metrics?.exporters ?? [];
  if (list.length === 0) return null;
  const doFetch = options.fetchImpl ?? fetch;
  const exporters: Exporter[] = list.map((e) => {
    const health: ExporterHealth = {
      url: e.url,
      status: "pending",
      last_ok: null,
      last_error: null,
      samples: 0,
      malformed: 0,
      scrapes: 0,
      failures: 0,
    };
    let include: RegExp[] | null = null;
    try {
      include = e.include ? e.include.map((r) => new RegExp(r)) : null;
    } catch (err) {
      health.status = "invalid";
      health.last_error = `invalid include regex: ${(err as Error).message}`;
    }
    return { url: e.url, intervalMs: parseDuration(e.interval), include, health, running: false };
  });
  let ctx: DaemonContext | null = null;

  const scrape = async (ex: Exporter): Promise<void> => {
    if (!ctx || ex.running || ex.health.status === "invalid") return;
    ex.running = true;
    ex.health.scrapes++;
    try {
      const res = await doFetch(ex.url, {
        signal: AbortSignal.any([
          AbortSignal.timeout(Math.min(MAX_TIMEOUT_MS, ex.intervalMs)),
          ctx.signal,
        ]),
        headers: { accept: "text/plain;version=0.0.4" },
      });
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status} ${res.statusText}`);
      }
      const { samples, errors } = parsePrometheusText(await res.text());
      let n = 0;
      for (const s of samples) {
        if (!Number.isFinite(s.value)) continue;
        if (ex.include && !ex.include.some((r) => r.test(s.name))) continue;
        await ctx.outbox.metric({
          name: s.name,
          value: s.value,
          labels: { ...s.labels, exporter: ex.url },
          kind: s.type === "counter" ? "counter" : "gauge",
        });
        n++;
      }
      ex.health.status = "ok";
      ex.health.samples = n;
      ex.health.malformed = errors.length;
      ex.health.last_ok = new Date().toISOString();
      ex.health.last_error = null;
    } catch (err) {
      ex.health.status = "failing";
      ex.health.failures++;
      ex.health.last_error = (err as Error)?.message ?? String(err);
      ctx?.logger.warn("exporter scrape failed", { url: ex.url, error: ex.health.last_error });
    } finally {
      ex.running = false;
    }
  };

  return {
    name: "metrics",
    start(c) {
      ctx = c;
      for (const ex of exporters) {
        if (ex.health.status === "invalid") {
          c.logger.error("exporter disabled", { url: ex.url, error: ex.health.last_error });
          continue;
        }
        scrape(ex);
        ex.timer = setInterval(() => scrape(ex), ex.intervalMs);
      }
      return Promise.resolve();
    },
    stop() {
      for (const ex of exporters) clearInterval(ex.timer);
      ctx = null;
      return Promise.resolve();
    },
    health() {
      const hs = exporters.map((e) => ({ ...e.health }));
      const bad = hs.some((h) => h.status === "failing" || h.status === "invalid");
      return { status: bad ? "degraded" : "healthy", exporters: hs };
    },
  };
}
