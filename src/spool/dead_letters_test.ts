import { assert, assertEquals, assertThrows } from "@std/assert";
import { tempDir } from "../../tests/helpers/nats_server.ts";
import { createOutbox } from "../events/mod.ts";
import { createUlidFactory } from "../util/ulid.ts";
import { openSpool, SpoolFullError, type SpoolInput } from "./mod.ts";

const ulid = createUlidFactory();
const enc = new TextEncoder();

function msg(priority: number, body: string): SpoolInput {
  return {
    id: ulid(),
    subject: "mr.s.n.ev.test",
    payload: enc.encode(body),
    priority,
    expiresAt: Date.now() + 60_000,
  };
}

Deno.test("spool - a full spool of lifecycle events refuses agent data instead of evicting them", async () => {
  const sp = openSpool(":memory:", { maxBytes: 5000 });
  try {
    const body = "x".repeat(1000);
    const life = [msg(1, body), msg(1, body), msg(1, body), msg(1, body)];
    sp.appendMany(life);
    // an agent's submission (priority >= 2) cannot make room by evicting priority 1
    const err = assertThrows(() => sp.append(msg(2, body)), SpoolFullError);
    assert(err.message.includes("higher-priority"), err.message);
    assertEquals(sp.next(10).map((m) => m.id), life.map((m) => m.id));
    assertEquals(sp.stats().dropped, 1);
    // through the outbox the agent's promise rejects; the lifecycle events stay
    const outbox = createOutbox({ spool: sp, config: { customer: "c", site: "s", node: "n" } });
    const refused = await outbox.submit("orders", { big: body }, { priority: 4 }).then(
      () => null,
      (e) => e,
    );
    assert(refused instanceof SpoolFullError, String(refused));
    assertEquals(sp.next(10).map((m) => m.id), life.map((m) => m.id));
    // a lifecycle event still gets in (evicting the oldest of its own priority)
    const newer = msg(1, body);
    sp.append(newer);
    assertEquals(sp.next(10).map((m) => m.id), [...life.slice(1), newer].map((m) => m.id));
    assertEquals(sp.stats().dropped, 3);
  } finally {
    sp.close();
  }
});

Deno.test("spool - park moves a message to dead letters; retry and purge; survives reopen", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/spool.db`;
  let sp = openSpool(path);
  const a = msg(2, "a"), b = msg(2, "b"), c = msg(3, "c");
  sp.appendMany([a, b, c]);
  const t0 = Date.now();
  assert(
    sp.park(a.id, {
      reason: "too_large",
      detail: "max_payload",
      count: 1,
      firstSeen: t0,
      lastSeen: t0,
    }),
  );
  assert(
    !sp.park("nope", { reason: "no_stream", detail: "", count: 1, firstSeen: t0, lastSeen: t0 }),
  );
  assert(
    sp.park(c.id, {
      reason: "no_stream",
      detail: "no responders",
      count: 5,
      firstSeen: t0 - 9000,
      lastSeen: t0,
    }),
  );
  assertEquals(sp.next(10).map((m) => m.id), [b.id]);
  assertEquals(sp.depth(), 1);
  let st = sp.stats();
  assertEquals([st.deadLetters, st.depth], [2, 1]);
  sp.close();
  sp = openSpool(path);
  try {
    const dl = sp.deadLetters();
    assertEquals(dl.map((d) => [d.id, d.reason, d.count]), [
      [a.id, "too_large", 1],
      [c.id, "no_stream", 5],
    ]);
    assertEquals(dl[1]!.firstSeen, t0 - 9000);
    assertEquals(sp.stats().deadLetters, 2);
    assertEquals(sp.retryDeadLetters([c.id]), 1);
    assertEquals(sp.next(10).map((m) => m.id), [b.id, c.id]);
    assertEquals(sp.purgeDeadLetters(), 1);
    st = sp.stats();
    assertEquals([st.deadLetters, st.depth], [0, 2]);
  } finally {
    sp.close();
  }
});

Deno.test("spool - the dead-letter table has a cap; the oldest go first and are counted", () => {
  const sp = openSpool(":memory:", { deadLetterMaxBytes: 2500 });
  try {
    const ms = [msg(2, "x".repeat(1000)), msg(2, "y".repeat(1000)), msg(2, "z".repeat(1000))];
    sp.appendMany(ms);
    const t = Date.now();
    for (const m of ms) {
      sp.park(m.id, { reason: "rejected", detail: "", count: 1, firstSeen: t, lastSeen: t });
    }
    assertEquals(sp.deadLetters().map((d) => d.id), [ms[1]!.id, ms[2]!.id]);
    assertEquals(sp.stats().deadLettersDropped, 1);
  } finally {
    sp.close();
  }
});
