/**
 * Facts: what this host is (cpu, memory, disks, network interfaces, OS, identity, agent
 * version), read from /proc, /sys and statfs on Linux (linux.ts) and collected with
 * `npm:systeminformation` elsewhere. The same document is published to
 * `mr.<site>.<node>.facts`, printed by `machine-room facts --json`, answered by the
 * `facts` command and matched by spec `match` rules (dotted paths, e.g. `os.platform`,
 * `cpu.cores`, `memory.total`).
 *
 * Collection is asynchronous (systeminformation reads /proc and /sys and runs a few
 * commands); each probe has a timeout, so a hung probe degrades one section instead of
 * blocking the document.
 *
 * @module
 */
import * as os from "node:os";
import type { LinuxCpu, LinuxDisk, LinuxMem, LinuxOs } from "./linux.ts";

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
  startedAt?: Date | string;
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

async function readSys(path: string): Promise<string | null> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch {
    return null;
  }
}

async function networkInterfaces(): Promise<Facts["network"]> {
  const out: Facts["network"] = [];
  for (const [iface, addrs] of Object.entries(os.networkInterfaces())) {
    const list = addrs ?? [];
    const v4 = list.find((a) => a.family === "IPv4");
    const v6 = list.find((a) => a.family === "IPv6");
    const speed = Number(await readSys(`/sys/class/net/${iface}/speed`));
    out.push({
      iface,
      ip4: v4?.address ?? "",
      ip6: v6?.address ?? "",
      mac: (v4 ?? v6)?.mac ?? "",
      internal: (v4 ?? v6)?.internal ?? false,
      operstate: await readSys(`/sys/class/net/${iface}/operstate`),
      speed_mbps: Number.isFinite(speed) && speed > 0 ? speed : null,
    });
  }
  return out;
}

const round2 = (n: number) => Math.round(n * 100) / 100;

/** What the cpu/memory/disk/os probes return (the fields collectFacts reads). */
interface Probes {
  cpu(): Promise<LinuxCpu>;
  mem(): Promise<LinuxMem>;
  fsSize(): Promise<(Omit<LinuxDisk, "use"> & { use: number | null })[]>;
  osInfo(): Promise<LinuxOs & { kernel?: string; arch?: string }>;
}

/**
 * Linux reads /proc, /sys and statfs directly (src/facts/linux.ts); other platforms load
 * `npm:systeminformation` on first use.
 */
async function factProbes(): Promise<Probes> {
  if (Deno.build.os === "linux") {
    return (await import("./linux.ts")).linuxProbes;
  }
  const { default: si } = await import("systeminformation");
  return si as unknown as Probes;
}

/** Collects the facts document. Never throws; failed probes are listed in `errors`. */
export async function collectFacts(o: CollectFactsOptions = {}): Promise<Facts> {
  const t0 = performance.now();
  const si = await factProbes();
  const timeout = o.probeTimeoutMs ?? 5_000;
  const errors: Record<string, string> = {};
  // Probes run one after another: in parallel, systeminformation's synchronous parts
  // line up into one ~250 ms event-loop stall; in sequence no stall exceeds ~20 ms.
  const cpu = await probe("cpu", () => si.cpu(), timeout, errors);
  const mem = await probe("memory", () => si.mem(), timeout, errors);
  const fs = await probe("disks", () => si.fsSize(), timeout, errors);
  // si.networkInterfaces() blocks the event loop ~200 ms (synchronous child processes);
  // node:os plus /sys reads give the same fields without blocking
  const ifaces = await probe("network", networkInterfaces, timeout, errors);
  const osInfo = await probe("os", () => si.osInfo(), timeout, errors);
  const mid = await probe("machine_id", machineId, timeout, errors);
  const [l1, l5, l15] = os.loadavg();
  const hostname = os.hostname();
  const facts: Facts = {
    identity: { ...o.identity, hostname, machine_id: mid },
    agent: {
      name: "machine-room",
      version: o.version ?? "0.0.0",
      deno: Deno.version.deno,
      pid: Deno.pid,
      started_at: new Date(o.startedAt ?? STARTED).toISOString(),
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
    network: ifaces ?? [],
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
