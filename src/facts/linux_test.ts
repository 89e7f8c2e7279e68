import { assert, assertEquals } from "@std/assert";
import si from "systeminformation";
import { linuxProbes, parseCpuinfo, parseMeminfo, parseMounts, parseOsRelease } from "./linux.ts";

Deno.test("linux facts - parsers", () => {
  const cpu = parseCpuinfo(
    [0, 1, 2, 3].map((i) =>
      `processor\t: ${i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz\ncpu MHz\t\t: 2112.000\nphysical id\t: 0\ncore id\t\t: ${
        i % 2
      }\n`
    ).join("\n"),
  );
  assertEquals(cpu, {
    manufacturer: "Intel",
    brand: "Core i7-8650U",
    cores: 4,
    physicalCores: 2,
    speed: 2.11,
  });
  const mem = parseMeminfo(
    "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\nSwapTotal:       100 kB\nSwapFree:         40 kB\n",
  );
  assertEquals(mem, {
    total: 1024000,
    free: 204800,
    used: 819200,
    available: 614400,
    swaptotal: 102400,
    swapused: 61440,
  });
  assertEquals(
    parseOsRelease(
      'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n',
    ),
    { platform: "linux", distro: "Debian GNU/Linux", release: "12", codename: "bookworm" },
  );
  assertEquals(
    parseMounts(
      "overlay / overlay rw 0 0\nproc /proc proc rw 0 0\n/dev/sda1 /data\\040x ext4 rw 0 0\ntmpfs /dev tmpfs rw 0 0\n/dev/sda1 /data\\040x ext4 rw 0 0\n",
    ),
    [
      { fs: "overlay", mount: "/", type: "overlay" },
      { fs: "/dev/sda1", mount: "/data x", type: "ext4" },
    ],
  );
});

Deno.test({
  name: "linux facts - agree with systeminformation on this host",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const [cpu, sCpu] = [await linuxProbes.cpu(), await si.cpu()];
    assertEquals(cpu.cores, sCpu.cores);
    assertEquals(cpu.physicalCores, sCpu.physicalCores);
    assertEquals(cpu.manufacturer, sCpu.manufacturer);
    const [mem, sMem] = [await linuxProbes.mem(), await si.mem()];
    assertEquals(mem.total, sMem.total);
    assertEquals(mem.swaptotal, sMem.swaptotal);
    const [os, sOs] = [await linuxProbes.osInfo(), await si.osInfo()];
    assertEquals(os.distro, sOs.distro);
    assertEquals(os.release, sOs.release);
    assertEquals(os.codename, sOs.codename);
    const disks = await linuxProbes.fsSize();
    const sDisks = await si.fsSize();
    const root = disks.find((d) => d.mount === "/");
    const sRoot = sDisks.find((d) => d.mount === "/");
    assert(root, "the root filesystem is listed");
    if (sRoot) {
      assertEquals(root.size, sRoot.size);
      assert(Math.abs(root.use - (sRoot.use ?? 0)) < 1, `use% ${root.use} vs ${sRoot.use}`);
    }
  },
});
