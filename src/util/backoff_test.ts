import { assertEquals, assertThrows } from "@std/assert";
import { Backoff, backoffDelay } from "./backoff.ts";

Deno.test("backoff - doubles from minMs, capped at maxMs, jitter pulls down by at most half", () => {
  const top = { minMs: 100, maxMs: 1000, random: () => 0 };
  const bottom = { ...top, random: () => 0.999999 };
  assertEquals([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, top)), [
    100,
    200,
    400,
    800,
    1000,
    1000,
  ]);
  assertEquals([0, 1, 4].map((a) => backoffDelay(a, bottom)), [50, 100, 500]);
});

Deno.test("backoff - jitter spreads a fleet's retries", () => {
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3, { minMs: 1000 });
    if (d < 4000 || d > 8000) throw new Error(`out of range: ${d}`);
    seen.add(d);
  }
  if (seen.size < 50) throw new Error(`not spread: ${seen.size} distinct`);
});

Deno.test("backoff - no jitter and full jitter", () => {
  assertEquals(backoffDelay(2, { minMs: 10, jitter: 0, random: () => 0.7 }), 40);
  assertEquals(backoffDelay(2, { minMs: 10, jitter: 1, random: () => 0.999999 }), 0);
});

Deno.test("backoff - state counts attempts and resets", () => {
  const b = new Backoff({ minMs: 10, maxMs: 100, random: () => 0 });
  assertEquals([b.next(), b.next(), b.next()], [10, 20, 40]);
  assertEquals(b.attempt, 3);
  assertEquals(b.nominalMs, 80);
  b.reset();
  assertEquals(b.next(), 10);
});

Deno.test("backoff - invalid options are refused", () => {
  assertThrows(() => backoffDelay(0, { minMs: 10, maxMs: 5 }), RangeError, "Invalid backoff");
  assertThrows(() => new Backoff({ jitter: 2 }), RangeError, "Invalid jitter");
  assertThrows(() => backoffDelay(0, { multiplier: 0.5 }), RangeError, "Invalid multiplier");
});
