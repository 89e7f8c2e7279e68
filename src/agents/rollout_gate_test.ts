// The KV rollout gate on a real nats-server: it never halts without the bucket, halts on the
// recorded failures, and waits (never goes blind) when the outcomes cannot be read or written.
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { startNatsServer } from "../../tests/helpers/nats_server.ts";
import { createLogger } from "../log/logger.ts";
import { createKvRolloutGate, ROLLOUT_BUCKET } from "./rollout.ts";
import { sha, spec } from "./_supervisor_harness.ts";

const roll = spec("b", { rollout: { governor: "rollout", capacity: 2, max_failures: 2 } });

Deno.test("rollout gate - no bucket: go; two failed: halted; unreadable or disconnected: wait, and a record not written is reported", async () => {
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  const lines: string[] = [];
  const logger = createLogger({ level: "warn", write: (l) => lines.push(l) });
  let conn: typeof nc | null = nc;
  const gate = (node: string) =>
    createKvRolloutGate({
      site: "s1",
      node,
      nats: () => conn,
      now: () => Date.now(),
      version: () => 3,
      logger,
    });
  try {
    // no MR_ROLLOUT bucket: this node cannot take part, so it is not held back
    assertEquals(await gate("n1").check(roll), "go");
    assertEquals(await gate("n1").record(roll, sha("a"), "started"), false);

    await new Kvm(nc).create(ROLLOUT_BUCKET, { history: 5 });
    assertEquals(await gate("n1").record(roll, sha("a"), "started"), true);
    assertEquals(await gate("n2").check(roll), "go", "one in flight, limit 2");
    assertEquals(await gate("n2").record(roll, sha("a"), "started"), true);
    assertEquals(await gate("n3").check(roll), "wait", "two in flight could reach the limit");
    assertEquals(await gate("n1").record(roll, sha("a"), "failed", "trap"), true);
    assertEquals(await gate("n2").record(roll, sha("a"), "failed", "trap"), true);
    assertEquals(await gate("n3").check(roll), "halted");

    // a node that cannot read the outcomes must not take the hash
    const fresh = spec("c", { rollout: { governor: "rollout", capacity: 2, max_failures: 2 } });
    conn = null;
    assertEquals(await gate("n3").check(fresh), "wait", "disconnected");
    assertEquals(await gate("n3").record(fresh, sha("b"), "started"), false);
    const closed = await connect({ servers: srv.url });
    await closed.close();
    conn = closed;
    assertEquals(await gate("n3").check(fresh), "wait", "closed connection");
    assertEquals(await gate("n3").record(fresh, sha("b"), "started"), false);
    assert(lines.some((l) => l.includes("cannot read rollout outcomes")), lines.join("\n"));
    assert(lines.some((l) => l.includes("cannot record rollout outcome")), lines.join("\n"));
  } finally {
    await nc.close();
  }
});
