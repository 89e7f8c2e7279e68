import { assert, assertEquals, assertThrows } from "@std/assert";
import { tempDir } from "../../tests/helpers/nats_server.ts";
import { createUlidFactory } from "../util/ulid.ts";
import { openSpool, type SpoolInput } from "./mod.ts";

const ulid = createUlidFactory();
const enc = new TextEncoder();

function msg(priority: number, body: string, expiresAt = Date.now() + 60_000): SpoolInput {
  return {
    id: ulid(),
    subject: "mr.s.n.ev.test",
    payload: enc.encode(body),
    priority,
    expiresAt,
  };
}

Deno.test("spool - highest priority first, oldest first within a priority", () => {
  const sp = openSpool(":memory:");
  try {
    const a = msg(2, "a"), b = msg(0, "b"), c = msg(2, "c"), d = msg(4, "d"), e = msg(0, "e");
    sp.append(a);
    sp.appendMany([b, c, d, e]);
    const got = sp.next(10).map((m) => new TextDecoder().decode(m.payload));
    assertEquals(got, ["b", "e", "a", "c", "d"]);
    assertEquals(sp.next(2, new Set([b.id])).map((m) => m.id), [e.id, a.id]);
    assertEquals(sp.stats().depth, 5);
    assertEquals(sp.stats().byPriority, { 0: 2, 1: 0, 2: 2, 3: 0, 4: 1 });
    sp.ack([b.id, e.id]);
    assertEquals(sp.next(10).map((m) => m.id), [a.id, c.id, d.id]);
    assertEquals(sp.stats().depth, 3);
  } finally {
    sp.close();
  }
});

Deno.test("spool - headers and fields round-trip", () => {
  const sp = openSpool(":memory:");
  try {
    const m = { ...msg(1, "x"), headers: { "Mr-Source": "mr://c/s/n" }, createdAt: 1234 };
    sp.append(m);
    const [got] = sp.next(1);
    assertEquals(got, { ...m, payload: got!.payload });
    assertEquals(got!.payload, m.payload);
  } finally {
    sp.close();
  }
});

Deno.test("spool - expired messages are purged by next() and counted", () => {
  let t = 1_000_000;
  const sp = openSpool(":memory:", { now: () => t });
  try {
    sp.append(msg(2, "short", t + 100));
    sp.append(msg(2, "long", t + 10_000));
    assertEquals(sp.next(10).length, 2);
    t += 500;
    const left = sp.next(10);
    assertEquals(left.map((m) => new TextDecoder().decode(m.payload)), ["long"]);
    const st = sp.stats();
    assertEquals(st.expired, 1);
    assertEquals(st.depth, 1);
    assertEquals(st.oldestAgeMs, 500);
  } finally {
    sp.close();
  }
});

Deno.test("spool - overflow drops lowest-priority oldest first and counts", () => {
  // each message: 1000-byte payload + subject + 64 overhead ≈ 1078 bytes
  const sp = openSpool(":memory:", { maxBytes: 5000 });
  try {
    const body = "x".repeat(1000);
    const hi1 = msg(0, body), lo1 = msg(4, body), mid = msg(2, body), lo2 = msg(4, body);
    sp.appendMany([hi1, lo1, mid, lo2]);
    assertEquals(sp.stats().dropped, 0);
    const hi2 = msg(0, body);
    sp.append(hi2); // 5 × 1078 > 5000 → drop lo1 (lowest priority, oldest)
    assertEquals(sp.stats().dropped, 1);
    assertEquals(sp.next(10).map((m) => m.id), [hi1.id, hi2.id, mid.id, lo2.id]);
    sp.append(msg(1, body));
    assertEquals(sp.stats().dropped, 2);
    assert(!sp.next(10).some((m) => m.id === lo2.id), "lo2 dropped next");
    assert(sp.stats().bytes <= 5000);
    const err = assertThrows(() => sp.append(msg(0, "y".repeat(6000))), RangeError);
    assert(String(err).includes("larger than the spool cap"));
    assertEquals(sp.stats().depth, 4);
  } finally {
    sp.close();
  }
});

Deno.test("spool - bad priority is a RangeError naming it", () => {
  const sp = openSpool(":memory:");
  try {
    const err = assertThrows(() => sp.append(msg(7, "x")), RangeError);
    assert(String(err).includes("priority"));
    assertEquals(sp.stats().depth, 0);
  } finally {
    sp.close();
  }
});

Deno.test("spool - onAppend wakes listeners, unsubscribe stops it", () => {
  const sp = openSpool(":memory:");
  try {
    let n = 0;
    const off = sp.onAppend(() => n++);
    sp.append(msg(2, "a"));
    sp.appendMany([msg(2, "b"), msg(2, "c")]);
    assertEquals(n, 2);
    off();
    sp.append(msg(2, "d"));
    assertEquals(n, 2);
  } finally {
    sp.close();
  }
});

Deno.test("spool - reopen keeps data, counters and order; file is 0600", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/spool.db`;
  const ids: string[] = [];
  {
    const sp = openSpool(path, { maxBytes: 3000 });
    for (let i = 0; i < 3; i++) {
      const m = msg(2, "z".repeat(1000));
      ids.push(m.id);
      sp.append(m);
    }
    sp.close();
  }
  const sp = openSpool(path, { maxBytes: 3000 });
  try {
    const st = sp.stats();
    assertEquals(st.dropped, 1);
    assertEquals(st.depth, 2);
    assertEquals(sp.next(10).map((m) => m.id), ids.slice(1));
    if (Deno.build.os !== "windows") {
      assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    }
  } finally {
    sp.close();
  }
});
