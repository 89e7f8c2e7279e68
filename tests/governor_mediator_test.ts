// The governor mediator at its boundary (a provisioned node's own credentials, operator
// mode): malformed, out-of-schema, unknown and oversized requests get a clear refusal and it
// keeps serving; a vendor eviction (`mr-saas governor evict`) reaches the daemon module as
// `evict`, not as a normal exit.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import type { NatsConnection } from "@nats-io/transport-node";
import { DiscardPolicy, jetstreamManager } from "@nats-io/jetstream";
import { join } from "node:path";
import { tempDir } from "./helpers/nats_server.ts";
import { startOperatorFleet } from "./helpers/operator_fleet.ts";
import {
  createGovernorClient,
  createGovernorModule,
  startGovernorMediator,
} from "../src/governor/mod.ts";
import { openSpool } from "../src/spool/mod.ts";
import { createOutbox } from "../src/events/mod.ts";
import { parseConfig } from "../src/config/schema.ts";
import { silentLogger } from "../src/log/logger.ts";
import type { DaemonContext } from "../src/daemon/types.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

async function ask(nc: NatsConnection, subject: string, body: string) {
  const r = await nc.request(subject, body, { timeout: 5000 });
  return JSON.parse(dec.decode(r.data)) as Record<string, unknown> & {
    error?: { code: string; message: string };
  };
}

Deno.test("governor mediator - bad requests are refused by name; it keeps serving", async () => {
  await using fleet = await startOperatorFleet({ mediator: false });
  const m = await startGovernorMediator(fleet.admin, { maxGovernors: 2, maxCapacity: 10 });
  try {
    const nc = await (await fleet.provisionNode("site1", "n1")).connect();
    try {
      const s = (op: string) => `mr.site1.n1.gov.${op}`;
      const cases: [string, string, string, string][] = [
        ["release", "{not json", "bad_request", "not JSON"],
        ["release", '{"governor":"Bad.Name","seq":1}', "bad_request", "governor"],
        ["release", '{"governor":"g"}', "bad_request", "seq"],
        ["release", '{"governor":"g","seq":1,"extra":true}', "bad_request", "extra"],
        ["ensure", '{"governor":"g","capacity":0}', "bad_request", "capacity"],
        ["ensure", '{"governor":"g","capacity":5000}', "too_large", "5000"],
        ["purge", '{"governor":"g"}', "unknown_op", "purge"],
        [
          "release",
          JSON.stringify({ governor: "g", seq: 1, pad: "x".repeat(200_000) }),
          "bad_request",
          "pad",
        ],
      ];
      for (const [op, body, code, names] of cases) {
        const r = await ask(nc, s(op), body);
        assertEquals(r.error?.code, code, `${op} ${body.slice(0, 60)}`);
        assertStringIncludes(r.error!.message, names);
      }
      // at most maxGovernors are created on request
      assertEquals((await ask(nc, s("ensure"), '{"governor":"g1","capacity":1}')).created, true);
      assertEquals((await ask(nc, s("ensure"), '{"governor":"g2","capacity":1}')).created, true);
      const third = await ask(nc, s("ensure"), '{"governor":"g3","capacity":1}');
      assertEquals(third.error?.code, "too_many");
      // an existing governor is never resized on request
      const again = await ask(nc, s("ensure"), '{"governor":"g1","capacity":9}');
      assertEquals(again.created, false);
      assertEquals((again.info as { capacity: number }).capacity, 1);
      // still serving
      const info = await ask(nc, s("info"), '{"governor":"g1"}');
      assertEquals((info.info as { capacity: number }).capacity, 1);
      assert(m.handled >= cases.length + 5);
    } finally {
      await nc.close();
    }
  } finally {
    await m.stop();
  }
});

Deno.test("governor mediator - a vendor eviction reaches the holder's module as evict", async () => {
  await using fleet = await startOperatorFleet();
  await using dir = await tempDir();
  const p = await fleet.provisionNode("site1", "n1");
  const nc = await p.connect();
  const config = parseConfig({ ...p.config, state_dir: dir.path });
  const spool = openSpool(join(dir.path, "spool.db"));
  const ac = new AbortController();
  const ctx = {
    config,
    logger: silentLogger,
    outbox: createOutbox({ spool, config }),
    nats: () => Promise.resolve(nc),
    natsNow: () => nc,
    signal: ac.signal,
    module: () => undefined,
  } as unknown as DaemonContext;
  const mod = createGovernorModule();
  await mod.start(ctx);
  try {
    const r = await mod.acquire("maint", { owner: "n1/agent", capacity: 1 });
    assert(r.held);
    // a second owner on the same node waits: one slot per node
    assertEquals((await mod.acquire("maint", { owner: "n1/other" })).held, false);
    const ev = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "provisioner/main.ts"),
        "--server",
        fleet.server.url,
        "--creds",
        fleet.adminCreds,
        "governor",
        "evict",
        "maint",
        "site1.n1",
        "--json",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(ev.code, 0, dec.decode(ev.stderr));
    assertEquals(JSON.parse(dec.decode(ev.stdout)).evicted, true);
    await mod.release("maint", "n1/agent");
    const h = mod.health!() as { evict: number; exit: number };
    assertEquals([h.evict, h.exit], [1, 0]);
    const kinds = spool.next(100).map((row) => JSON.parse(dec.decode(row.payload)).type as string);
    assert(kinds.includes("io.machineroom.governor.v1.evict"), kinds.join(", "));
    // the slot is free again
    assert((await createGovernorClient(fleet.admin).holders("maint")).length === 0);
  } finally {
    await mod.stop();
    ac.abort();
    spool.close();
    await nc.close();
  }
});

Deno.test("governor mediator - a governor of the old shape gets holder subjects, capacity kept", async () => {
  await using fleet = await startOperatorFleet();
  const jsm = await jetstreamManager(fleet.admin);
  await jsm.streams.add({
    name: "MR_GOV_old",
    subjects: ["mr.gov.old"],
    max_msgs: 2,
    discard: DiscardPolicy.New,
    max_age: 60_000 * 1_000_000,
  });
  const nc = await (await fleet.provisionNode("site1", "n1")).connect();
  try {
    const gov = createGovernorClient(nc, { holder: { site: "site1", node: "n1" } });
    const lease = await gov.acquire("old", { owner: "n1", capacity: 9, timeoutMs: 10_000 });
    assert(lease, "acquired after the reshape");
    const si = await jsm.streams.info("MR_GOV_old");
    assertEquals(si.config.subjects, ["mrgov.old.*.*"]);
    assertEquals([si.config.max_msgs, si.config.max_msgs_per_subject], [2, 1]);
    assertEquals(await gov.release(lease), true);
  } finally {
    await nc.close();
  }
});
