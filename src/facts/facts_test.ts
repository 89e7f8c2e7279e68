import { assert, assertEquals } from "@std/assert";
import { collectFacts, factAt } from "./mod.ts";

Deno.test("facts - dotted paths", () => {
  const doc = { cpu: { cores: 4 }, disks: [{ mount: "/" }], os: null };
  assertEquals(factAt(doc, "cpu.cores"), 4);
  assertEquals(factAt(doc, "disks.0.mount"), "/");
  assertEquals(factAt(doc, "os.platform"), undefined);
  assertEquals(factAt(doc, "nope.deeper"), undefined);
});

Deno.test("facts - the document has every section with plausible values", async () => {
  const f = await collectFacts({
    identity: { customer: "c", site: "s", node: "n" },
    version: "9.9.9",
  });
  assertEquals(f.identity.node, "n");
  assertEquals(f.agent.version, "9.9.9");
  assert(f.cpu.cores >= 1);
  assert(f.memory.total > 0 && f.memory.used_percent >= 0 && f.memory.used_percent <= 100);
  assert(f.disks.some((d) => d.mount === "/"), "root filesystem listed");
  assert(f.network.some((n) => n.iface === "lo" && n.internal));
  assertEquals(f.os.platform, "linux");
  assert(typeof f.os.kernel === "string" && f.os.kernel.length > 0);
  assert(!Number.isNaN(Date.parse(f.collected_at)));
});
