import { assertEquals, assertRejects } from "@std/assert";
import { floorsPath, loadFloors, saveFloors } from "./floors.ts";

Deno.test("floors - absent is empty, saved 0600 and read back, corrupt is an error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mr-floors-" });
  try {
    assertEquals(await loadFloors(`${dir}/desired`), {});
    await saveFloors(`${dir}/desired`, { "site.s1": 7, "node.s1.n1": 2 });
    assertEquals(await loadFloors(`${dir}/desired`), { "site.s1": 7, "node.s1.n1": 2 });
    assertEquals((await Deno.stat(floorsPath(`${dir}/desired`))).mode! & 0o777, 0o600);
    await Deno.writeTextFile(floorsPath(`${dir}/desired`), '{"site.s1":"seven"}');
    await assertRejects(() => loadFloors(`${dir}/desired`), TypeError, "Invalid");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
