import { assert, assertEquals, assertRejects } from "@std/assert";
import { FakeClock, systemClock } from "./clock.ts";

Deno.test("clock - fake timers fire in order, including ones set by a callback", () => {
  const c = new FakeClock({ now: 1000 });
  const fired: string[] = [];
  c.setTimeout(() => fired.push("b"), 20);
  c.setTimeout(() => {
    fired.push("a");
    c.setTimeout(() => fired.push("a2"), 5); // due at 15, before b
  }, 10);
  const cancelled = c.setTimeout(() => fired.push("never"), 15);
  c.clearTimeout(cancelled);
  c.tick(19);
  assertEquals(fired, ["a", "a2"]);
  assertEquals(c.now(), 1019);
  assertEquals(c.monotonic(), 19);
  c.tick(1);
  assertEquals(fired, ["a", "a2", "b"]);
  assertEquals(c.pending, 0);
});

Deno.test("clock - a wall-clock jump leaves monotonic time and timers alone", () => {
  const c = new FakeClock({ now: 1_700_000_000_000 });
  let fired = false;
  c.setTimeout(() => fired = true, 1000);
  c.jumpWall(-3_600_000);
  assertEquals(c.now(), 1_700_000_000_000 - 3_600_000);
  assertEquals(c.monotonic(), 0);
  c.tick(999);
  assert(!fired);
  c.jumpWall(7_200_000);
  c.tick(1);
  assert(fired);
});

Deno.test("clock - tickAsync lets an async loop run its awaits between timers", async () => {
  const c = new FakeClock();
  const woke: number[] = [];
  const loop = (async () => {
    for (let i = 0; i < 3; i++) {
      await c.sleep(100);
      woke.push(c.monotonic());
    }
  })();
  await c.tickAsync(250);
  assertEquals(woke, [100, 200]);
  await c.tickAsync(50);
  await loop;
  assertEquals(woke, [100, 200, 300]);
});

Deno.test("clock - sleep rejects on abort and drops its timer", async () => {
  const c = new FakeClock();
  const ac = new AbortController();
  const p = c.sleep(1000, ac.signal);
  assertEquals(c.pending, 1);
  ac.abort(new Error("stop"));
  await assertRejects(() => p, Error, "stop");
  assertEquals(c.pending, 0);
  await assertRejects(() => c.sleep(1, ac.signal), Error, "stop");
});

Deno.test("clock - system clock sleeps and its monotonic time advances", async () => {
  const t0 = systemClock.monotonic();
  await systemClock.sleep(5);
  assert(systemClock.monotonic() > t0);
  assert(Math.abs(systemClock.now() - Date.now()) < 1000);
});
