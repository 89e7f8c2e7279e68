import { assertEquals, assertThrows } from "@std/assert";
import { createDenialCounter, createRateLimiter, parseRate } from "./limits.ts";

Deno.test("limits - rates parse per second, minute and hour; nonsense is refused", () => {
  assertEquals(parseRate("600/min"), 600);
  assertEquals(parseRate("10/s"), 600);
  assertEquals(parseRate("3600/h"), 60);
  assertEquals(parseRate("42"), 42);
  assertThrows(() => parseRate("lots"), TypeError, "600/min");
  assertThrows(() => parseRate("0/min"), TypeError, "positive");
});

Deno.test("limits - a client's bucket empties, refills with time, and clients are apart", () => {
  let now = 1_000_000;
  const r = createRateLimiter(60, () => now); // one a second, bursts of 60
  for (let i = 0; i < 60; i++) assertEquals(r.limited("a"), false);
  assertEquals(r.limited("a"), true);
  assertEquals(r.limited("b"), false, "another client has its own bucket");
  now += 1_000;
  assertEquals(r.limited("a"), false, "one more after a second");
  assertEquals(r.limited("a"), true);
});

Deno.test("limits - refusals are summed per client, then drained", () => {
  let now = 0;
  const d = createDenialCounter(() => now, 2);
  d.add("1.1.1.1", "bad_nonce");
  now = 5_000;
  d.add("1.1.1.1", "bad_nonce");
  d.add("1.1.1.1", "too_large");
  d.add("2.2.2.2", "rate_limited");
  d.add("3.3.3.3", "rate_limited"); // over the client cap: pooled
  const s = d.drain();
  assertEquals(s.map((x) => [x.ip, x.count]), [["1.1.1.1", 3], ["2.2.2.2", 1], [
    "(other clients)",
    1,
  ]]);
  assertEquals(s[0]!.codes, { bad_nonce: 2, too_large: 1 });
  assertEquals([s[0]!.from, s[0]!.to], [new Date(0).toISOString(), new Date(5000).toISOString()]);
  assertEquals(d.drain(), []);
});
