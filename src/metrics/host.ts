/**
 * The daemon's own metrics, sent with every heartbeat so the vendor can graph a host over
 * time (the console's node view, `/metrics`): CPU busy %, memory used %, load, the
 * daemon's RSS and its spool depth.
 *
 * @module
 */

/** One sample as the outbox takes it. */
export interface HostSample {
  name: string;
  value: number;
  kind: "gauge";
}

function cpuTimes(): { busy: number; total: number } | null {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n", 1)[0] ?? "";
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return null;
    const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return null; // not Linux, or /proc unreadable
  }
}

/** Returns a sampler; CPU % is over the time since the previous call. */
export function createHostSampler(): (spoolDepth: number) => HostSample[] {
  let prev = cpuTimes();
  return (spoolDepth) => {
    const out: HostSample[] = [];
    const cur = cpuTimes();
    if (prev && cur && cur.total > prev.total) {
      const pct = (100 * (cur.busy - prev.busy)) / (cur.total - prev.total);
      out.push({ name: "mr_host_cpu_percent", value: Math.round(pct * 10) / 10, kind: "gauge" });
    }
    prev = cur;
    try {
      const m = Deno.systemMemoryInfo();
      if (m.total > 0) {
        const used = 100 * (1 - m.available / m.total);
        out.push({
          name: "mr_host_memory_used_percent",
          value: Math.round(used * 10) / 10,
          kind: "gauge",
        });
      }
    } catch { /* not available */ }
    try {
      out.push({ name: "mr_host_load1", value: Deno.loadavg()[0] ?? 0, kind: "gauge" });
    } catch { /* not available */ }
    out.push({ name: "mr_daemon_rss_bytes", value: Deno.memoryUsage().rss, kind: "gauge" });
    out.push({ name: "mr_spool_depth", value: spoolDepth, kind: "gauge" });
    return out;
  };
}
