import { assert, assertEquals, assertThrows } from "@std/assert";
import { formatDuration, parseDuration } from "./duration.ts";
import { createUlidFactory, isUlid, ulidTime } from "./ulid.ts";
import { isId } from "./ids.ts";

Deno.test("duration - parses and formats", () => {
  assertEquals(parseDuration("250ms"), 250);
  assertEquals(parseDuration("1m30s"), 90_000);
  assertEquals(parseDuration("7d"), 604_800_000);
  assertEquals(formatDuration(90_000), "1m30s");
  assertThrows(() => parseDuration("30"), SyntaxError);
  assertThrows(() => parseDuration("5 minutes"), /Invalid duration: "5 minutes"/);
});

Deno.test("ulid - monotonic within a millisecond and encodes time", () => {
  const make = createUlidFactory({ now: () => 1_700_000_000_000 });
  const ids = Array.from({ length: 1000 }, make);
  assert(ids.every(isUlid));
  assertEquals([...ids].sort(), ids);
  assertEquals(new Set(ids).size, 1000);
  assertEquals(ulidTime(ids[0]!), 1_700_000_000_000);
});

Deno.test("ids - wire identifier rule", () => {
  assert(isId("site-1"));
  assert(isId("n_2"));
  assert(!isId("Site"));
  assert(!isId("-x"));
  assert(!isId("a".repeat(64)));
});
