/**
 * Facts: what this host is (cpu, memory, disks, network interfaces, OS, identity, agent
 * version), collected with `npm:systeminformation`. The same document is published to
 * `mr.<site>.<node>.facts`, printed by `machine-room facts --json`, answered by the
 * `facts` command and matched by spec `match` rules (dotted paths, e.g. `os.platform`,
 * `cpu.cores`, `memory.total`).
 *
 * Collection is asynchronous (systeminformation reads /proc and /sys and runs a few
 * commands); the slowest probes run in parallel and each has a timeout, so a hung probe
 * degrades one section instead of blocking the document.
 *
 * @module
 */
import si from "systeminformation";
import * as os from "node:os";

/** The facts document. Sections may be `null` when their probe failed. */
export interface Facts {
  [key: string]: unknown;
  identity: {
    customer?: string;
    site?: string;
    node?: string;
    hostname: string;
    machine_id: string | null;
  };
  agent: { name: string; version: string; deno: string; pid: number; started_at: string };
  os: {
    platform: string;
    distro: string | null;
    release: string | null;
    codename: string | null;
    kernel: string;
    arch: string;
    hostname: string;
  };
  cpu: {
    manufacturer: string | null;
    brand: string | null;
    cores: number;
    physical_cores: number | null;
    speed_ghz: number | null;
    load: { "1m": number; "5m": number; "15m": number };
  };
  memory: {
    total: number;
    free: number;
    used: number;
    available: number;
    used_percent: number;
    swap_total: number;
    swap_used: number;
  };
  disks: {
    fs: string;
    mount: string;
    type: string;
    size: number;
    used: number;
    available: number;
    use_percent: number;
  }[];
  network: {
    iface: string;
    ip4: string;
    ip6: string;
    mac: string;
    internal: boolean;
    operstate: string | null;
    speed_mbps: number | null;
  }[];
  collected_at: string;
  /** Collection time in ms. */
  collect_ms: number;
  /** Probes that failed or timed out. */
  errors?: Record<string, string>;
}

/** Options for {@linkcode collectFacts}. */
export interface CollectFactsOptions {
  identity?: { customer?: string; site?: string; node?: string };
  version?: string;
  startedAt?: Date;
  /** Per-probe timeout. @default {5000} */
  probeTimeoutMs?: number;
}

const STARTED = new Date();

async function probe<T>(
  name: string,
  fn: () => Promise<T>,
  timeoutMs: number,
  errors: Record<string, string>,
): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    errors[name] = (err as Error).message ?? String(err);
    return null;
  } finally {
    clearTimeout(timer);
  }
}

async function machineId(): Promise<string | null> {
  for (const p of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
    try {
      const v = (await Deno.readTextFile(p)).trim();
      if (v) return v;
    } catch { /* next */ }
  }
  return null;
}

const round2 = (n: number) => Math.round(n * 100) / 100;

/** Collects the facts document. Never throws; failed probes are listed in `errors`. */
export async function collectFacts(o: CollectFactsOptions = {}): Promise<Facts> {
  const t0 = performance.now();
  const timeout = o.probeTimeoutMs ?? 5_000;
  const errors: Record<string, string> = {};
  const [cpu, mem, fs, ifaces, osInfo, mid] = await Promise.all([
    probe("cpu", () => si.cpu(), timeout, errors),
    probe("memory", () => si.mem(), timeout, errors),
    probe("disks", () => si.fsSize(), timeout, errors),
    probe(
      "network",
      () => si.networkInterfaces() as Promise<si.Systeminformation.NetworkInterfacesData[]>,
      timeout,
      errors,
    ),
    probe("os", () => si.osInfo(), timeout, errors),
    probe("machine_id", machineId, timeout, errors),
  ]);
  const [l1, l5, l15] = os.loadavg();
  const hostname = os.hostname();
  const facts: Facts = {
    identity: { ...o.identity, hostname, machine_id: mid },
    agent: {
      name: "machine-room",
      version: o.version ?? "0.0.0",
      deno: Deno.version.deno,
      pid: Deno.pid,
      started_at: (o.startedAt ?? STARTED).toISOString(),
    },
    os: {
      platform: osInfo?.platform ?? os.platform(),
      distro: osInfo?.distro || null,
      release: osInfo?.release || null,
      codename: osInfo?.codename || null,
      kernel: osInfo?.kernel || os.release(),
      arch: osInfo?.arch || os.arch(),
      hostname,
    },
    cpu: {
      manufacturer: cpu?.manufacturer || null,
      brand: cpu?.brand || null,
      cores: cpu?.cores || os.cpus().length,
      physical_cores: cpu?.physicalCores || null,
      speed_ghz: cpu?.speed || null,
      load: { "1m": round2(l1 ?? 0), "5m": round2(l5 ?? 0), "15m": round2(l15 ?? 0) },
    },
    memory: {
      total: mem?.total ?? os.totalmem(),
      free: mem?.free ?? os.freemem(),
      used: mem?.used ?? os.totalmem() - os.freemem(),
      available: mem?.available ?? os.freemem(),
      used_percent: round2(
        mem
          ? ((mem.total - mem.available) / mem.total) * 100
          : (1 - os.freemem() / os.totalmem()) * 100,
      ),
      swap_total: mem?.swaptotal ?? 0,
      swap_used: mem?.swapused ?? 0,
    },
    disks: (fs ?? []).map((d) => ({
      fs: d.fs,
      mount: d.mount,
      type: d.type,
      size: d.size,
      used: d.used,
      available: d.available,
      use_percent: round2(d.use ?? 0),
    })),
    network: (ifaces ?? []).map((n) => ({
      iface: n.iface,
      ip4: n.ip4,
      ip6: n.ip6,
      mac: n.mac,
      internal: n.internal,
      operstate: n.operstate || null,
      speed_mbps: n.speed ?? null,
    })),
    collected_at: new Date().toISOString(),
    collect_ms: 0,
  };
  if (Object.keys(errors).length) facts.errors = errors;
  facts.collect_ms = Math.round(performance.now() - t0);
  return facts;
}

/**
 * Reads a dotted path (`cpu.cores`, `disks.0.mount`) from a document; `undefined` when a
 * segment is missing.
 */
export function factAt(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const seg of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}
