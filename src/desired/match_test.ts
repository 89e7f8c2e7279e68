import { assertEquals } from "@std/assert";
import { matches } from "./match.ts";

const facts = {
  os: { platform: "linux", distro: "Debian GNU/Linux" },
  cpu: { cores: 4 },
  identity: { node: "web-1" },
};

Deno.test("match - values and operators against dotted fact paths", () => {
  assertEquals(matches(undefined, facts), true);
  assertEquals(matches({ "os.platform": "linux" }, facts), true);
  assertEquals(matches({ "os.platform": "darwin" }, facts), false);
  assertEquals(matches({ "cpu.cores": { gte: 2 } }, facts), true);
  assertEquals(matches({ "cpu.cores": { gte: 8 } }, facts), false);
  assertEquals(matches({ "cpu.cores": { lte: 4, gte: 4 } }, facts), true);
  assertEquals(matches({ "identity.node": { in: ["web-1", "web-2"] } }, facts), true);
  assertEquals(matches({ "identity.node": { ne: "web-1" } }, facts), false);
  assertEquals(matches({ "os.distro": { regex: "^Debian" } }, facts), true);
  assertEquals(matches({ "os.distro": { regex: "([" } }, facts), false);
  assertEquals(matches({ "missing.path": { gte: 1 } }, facts), false);
  assertEquals(matches({ "os.platform": "linux", "cpu.cores": { gte: 8 } }, facts), false);
});
