/**
 * Facts probes for Linux read straight from `/proc`, `/sys`, `/etc/os-release` and
 * `statfs(2)`: no child processes, no event-loop stalls, and none of the memory a general
 * system-information library keeps resident in a long-running daemon. Other platforms use
 * `npm:systeminformation` (see mod.ts). Field names follow what mod.ts consumes.
 *
 * @module
 */
import { statfs } from "node:fs/promises";

/** CPU identity. */
export interface LinuxCpu {
  manufacturer: string;
  brand: string;
  cores: number;
  physicalCores: number;
  speed: number | null;
}

/** Parses `/proc/cpuinfo`. */
export function parseCpuinfo(text: string): LinuxCpu {
  const blocks = text.split(/\n\s*\n/).filter((b) => b.trim());
  let vendor = "";
  let model = "";
  let mhz: number | null = null;
  const physical = new Set<string>();
  let processors = 0;
  for (const b of blocks) {
    const f: Record<string, string> = {};
    for (const line of b.split("\n")) {
      const i = line.indexOf(":");
      if (i > 0) f[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    if (f.processor === undefined) continue;
    processors++;
    vendor ||= f.vendor_id ?? f.CPU_implementer ?? "";
    model ||= f["model name"] ?? f["Model"] ?? f["cpu model"] ?? "";
    if (mhz === null && f["cpu MHz"]) mhz = Number(f["cpu MHz"]);
    if (f["physical id"] !== undefined && f["core id"] !== undefined) {
      physical.add(`${f["physical id"]}/${f["core id"]}`);
    }
  }
  const manufacturer = /GenuineIntel/.test(vendor)
    ? "Intel"
    : /AuthenticAMD/.test(vendor)
    ? "AMD"
    : vendor;
  const brand = model.replace(/\((R|TM|tm|r)\)/g, "").replace(/\s+CPU\s+@.*$/, "")
    .replace(/^(Intel|AMD)\s+/, "").replace(/\s+/g, " ").trim();
  return {
    manufacturer,
    brand,
    cores: processors,
    physicalCores: physical.size || processors,
    speed: mhz && Number.isFinite(mhz) ? Math.round(mhz / 10) / 100 : null,
  };
}

/** Memory in bytes. */
export interface LinuxMem {
  total: number;
  free: number;
  used: number;
  available: number;
  swaptotal: number;
  swapused: number;
}

/** Parses `/proc/meminfo` (kB values). */
export function parseMeminfo(text: string): LinuxMem {
  const kb = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  const total = kb("MemTotal");
  const free = kb("MemFree");
  const available = kb("MemAvailable") || free + kb("Buffers") + kb("Cached");
  const swaptotal = kb("SwapTotal");
  return {
    total,
    free,
    used: total - free,
    available,
    swaptotal,
    swapused: swaptotal - kb("SwapFree"),
  };
}

/** OS release. */
export interface LinuxOs {
  platform: string;
  distro: string;
  release: string;
  codename: string;
}

/** Parses `/etc/os-release`. */
export function parseOsRelease(text: string): LinuxOs {
  const f: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) f[m[1]!] = m[2]!.replace(/^["']|["']$/g, "");
  }
  return {
    platform: "linux",
    distro: f.NAME ?? f.ID ?? "",
    release: f.VERSION_ID ?? "",
    codename: f.VERSION_CODENAME ?? "",
  };
}

/** Filesystem types that hold no user data (pseudo and image filesystems). */
const PSEUDO_FS = new Set([
  "proc",
  "sysfs",
  "devpts",
  "devtmpfs",
  "tmpfs",
  "cgroup",
  "cgroup2",
  "mqueue",
  "securityfs",
  "debugfs",
  "tracefs",
  "pstore",
  "bpf",
  "autofs",
  "configfs",
  "fusectl",
  "hugetlbfs",
  "binfmt_misc",
  "nsfs",
  "squashfs",
  "rpc_pipefs",
  "selinuxfs",
  "efivarfs",
  "ramfs",
]);

/** A mounted filesystem. */
export interface LinuxDisk {
  fs: string;
  mount: string;
  type: string;
  size: number;
  used: number;
  available: number;
  use: number;
}

/** Real filesystems of `/proc/mounts` text, first mount of each device wins. */
export function parseMounts(text: string): { fs: string; mount: string; type: string }[] {
  const out: { fs: string; mount: string; type: string }[] = [];
  const seen = new Set<string>();
  for (const line of text.split("\n")) {
    const [dev, mnt, type] = line.split(" ");
    if (!dev || !mnt || !type || PSEUDO_FS.has(type)) continue;
    const mount = mnt.replace(/\\040/g, " ");
    if (seen.has(mount)) continue;
    seen.add(mount);
    out.push({ fs: dev, mount, type });
  }
  return out;
}

/** Sizes of the real filesystems (statfs per mount; unreadable mounts are skipped). */
export async function linuxDisks(): Promise<LinuxDisk[]> {
  const mounts = parseMounts(await Deno.readTextFile("/proc/mounts"));
  const out: LinuxDisk[] = [];
  for (const m of mounts) {
    try {
      const s = await statfs(m.mount);
      const size = Number(s.blocks) * Number(s.bsize);
      if (size === 0) continue;
      const used = (Number(s.blocks) - Number(s.bfree)) * Number(s.bsize);
      const available = Number(s.bavail) * Number(s.bsize);
      const use = used + available > 0 ? (used / (used + available)) * 100 : 0;
      out.push({ ...m, size, used, available, use });
    } catch { /* not ours to read */ }
  }
  return out;
}

/** The four probes mod.ts runs, for Linux. */
export const linuxProbes = {
  cpu: async () => parseCpuinfo(await Deno.readTextFile("/proc/cpuinfo")),
  mem: async () => parseMeminfo(await Deno.readTextFile("/proc/meminfo")),
  fsSize: linuxDisks,
  osInfo: async () => {
    const text = await Deno.readTextFile("/etc/os-release")
      .catch(() => Deno.readTextFile("/usr/lib/os-release"))
      .catch(() => "");
    return parseOsRelease(text);
  },
};
