// Hostile modules through the sandbox (issue 12, sound metering): every runaway class is
// stopped by the module's own fuel check, as fuel_exhausted with a small budget and as
// timeout with an ample one (the runtime's deadline message, not the watchdog replacing a
// stuck thread), and the plugin serves its next call. Plus the on-disk instrument cache.
import { assert, assertEquals, assertNotEquals, assertRejects } from "@std/assert";
import { join } from "node:path";
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { INSTRUMENT_CACHE_DIR, instrumentCached } from "../src/plugins/instrument_cache.ts";
import { type AgentPlugin, SandboxError } from "../src/plugins/types.ts";
import { compileWat, setupSandbox } from "./helpers/wat.ts";

const noGrants = grantsSchema.parse({});

const RUNAWAYS: [string, string[]][] = [
  ["runaway", ["spin"]],
  ["hostile_bulk", ["fill", "copy", "init", "grow0"]],
  ["hostile_table", ["fill", "copy", "init", "grow"]],
  ["hostile_control", ["br_table", "tail"]],
];

async function expectStop(p: AgentPlugin, fn: string, code: string): Promise<void> {
  const err = await assertRejects(() => p.call(fn), SandboxError);
  assertEquals((err as SandboxError).code, code, `${fn}: ${(err as Error).message}`);
  if (code === "timeout") {
    assert(
      (err as Error).message.includes("exceeded its deadline"),
      `${fn} stopped itself at its deadline, not by the watchdog: ${(err as Error).message}`,
    );
  }
}

Deno.test("metering - every runaway class stops with fuel_exhausted on a small budget", async () => {
  await using t = await setupSandbox();
  for (const [fixture, fns] of RUNAWAYS) {
    const p = await t.sandbox.load(await compileWat(fixture), {
      name: fixture,
      grants: noGrants,
      limits: limitsSchema.parse({ fuel: 50_000_000, timeout_ms: 20_000, memory_mb: 64 }),
    });
    for (const fn of fns) {
      await expectStop(p, fn, "fuel_exhausted");
      assertEquals((await p.call("ok")).length, 0, `${fixture} serves after ${fn}`);
    }
    await p.close();
  }
});

Deno.test("metering - every runaway class stops itself at its deadline with ample fuel", async () => {
  await using t = await setupSandbox();
  for (const [fixture, fns] of RUNAWAYS) {
    const p = await t.sandbox.load(await compileWat(fixture), {
      name: fixture,
      grants: noGrants,
      limits: limitsSchema.parse({ fuel: 1e15, timeout_ms: 150, memory_mb: 64 }),
    });
    for (const fn of fns) {
      await expectStop(p, fn, "timeout");
      assertEquals((await p.call("ok")).length, 0, `${fixture} serves after ${fn}`);
    }
    await p.close();
  }
});

Deno.test("metering - recursion is a trap, a huge bulk length is charged before its bounds trap", async () => {
  await using t = await setupSandbox();
  const limits = limitsSchema.parse({ fuel: 100_000_000, timeout_ms: 5_000, memory_mb: 64 });
  const c = await t.sandbox.load(await compileWat("hostile_control"), {
    name: "control",
    grants: noGrants,
    limits,
  });
  await expectStop(c, "recurse", "trap");
  await expectStop(c, "indirect", "trap");
  const b = await t.sandbox.load(await compileWat("hostile_bulk"), {
    name: "bulk",
    grants: noGrants,
    limits,
  });
  // a 4 GiB fill costs 2^30 fuel, more than the budget: refused before the bounds check
  await expectStop(b, "fill_huge", "fuel_exhausted");
  const rich = await t.sandbox.load(await compileWat("hostile_bulk"), {
    name: "bulk-rich",
    grants: noGrants,
    limits: { ...limits, fuel: 2_000_000_000 },
  });
  await expectStop(rich, "fill_huge", "trap");
});

Deno.test("metering - a spinning start function or _initialize is stopped at the first call, not at load", async () => {
  await using t = await setupSandbox();
  for (const fixture of ["start_spin", "initialize_spin"]) {
    for (
      const [limits, code] of [[{ fuel: 10_000_000 }, "fuel_exhausted"], [{
        fuel: 1e15,
        timeout_ms: 150,
      }, "timeout"]] as const
    ) {
      const p = await t.sandbox.load(await compileWat(fixture), {
        name: fixture,
        grants: noGrants,
        limits: limitsSchema.parse(limits),
      });
      assert(p.has("mr_reconcile"));
      assert(!p.has("_initialize"), "_initialize is not callable from outside");
      await expectStop(p, "mr_reconcile", code);
      await p.close();
    }
  }
});

Deno.test("metering - instrumented modules are cached in the state dir (0600) and a corrupt entry is rebuilt", async () => {
  await using t = await setupSandbox();
  const wasm = await compileWat("differential");
  const opts = { name: "d", grants: noGrants, limits: limitsSchema.parse({ memory_mb: 4 }) };
  const dir = join(t.dir, INSTRUMENT_CACHE_DIR);
  const p1 = await t.sandbox.load(wasm, opts);
  const files = [...Deno.readDirSync(dir)].map((e) => e.name);
  assertEquals(files.length, 1, "one entry");
  const path = join(dir, files[0]!);
  assertEquals(Deno.statSync(path).mode! & 0o777, 0o600);
  assertEquals(Deno.statSync(dir).mode! & 0o777, 0o700);
  const first = await Deno.readFile(path);
  await p1.close();
  // a second load is served from the entry (its mtime does not change)
  const mtime = Deno.statSync(path).mtime;
  const p2 = await t.sandbox.load(wasm, opts);
  assertEquals(Deno.statSync(path).mtime, mtime);
  await p2.close();
  // a torn/tampered entry is not used: it is rebuilt
  const bad = first.slice();
  bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff;
  await Deno.writeFile(path, bad);
  const p3 = await t.sandbox.load(wasm, opts);
  assertEquals(await Deno.readFile(path), first);
  assertEquals((await p3.call("fib", new Uint8Array())).length, 0);
  await p3.close();
  // other caps are another entry
  await (await t.sandbox.load(wasm, { ...opts, limits: limitsSchema.parse({ memory_mb: 8 }) }))
    .close();
  const after = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assertEquals(after.length, 2);
  assertNotEquals(after[0], after[1]);
});

Deno.test("metering - the instrument cache keeps its newest entries only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mr-icache-" });
  try {
    const wasm = await compileWat("differential");
    for (const maxPages of [2, 3, 4, 5]) {
      await instrumentCached(wasm, { maxPages }, dir, 2);
      await new Promise((r) => setTimeout(r, 20)); // distinct mtimes
    }
    assertEquals([...Deno.readDirSync(dir)].length, 2);
    // the newest (maxPages 5) is still served from the cache: its file is not rewritten
    const names = [...Deno.readDirSync(dir)].map((e) => join(dir, e.name));
    const before = names.map((n) => Deno.statSync(n).mtime?.getTime());
    await instrumentCached(wasm, { maxPages: 5 }, dir, 2);
    assertEquals(names.map((n) => Deno.statSync(n).mtime?.getTime()), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
