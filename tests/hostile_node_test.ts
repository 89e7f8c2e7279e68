// The hostile node: a real daemon (site1.n1) enrolled in operator mode, and an attacker
// holding that node's own credentials (and, for some tries, none). Every try is refused with
// the expected error (a permissions violation, a mediator refusal or a desired-state
// rejection event); nothing is lost and the daemon keeps running its last good state.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { connect, errors, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { join } from "node:path";
import { waitFor } from "./helpers/daemon.ts";
import { startOperatorFleet } from "./helpers/operator_fleet.ts";
import { createSigningKey, signSpec } from "../src/desired/envelope.ts";
import { createGovernorClient, governorStream } from "../src/governor/mod.ts";

// The server resets connections it refuses (no credentials); the Node-compat socket can
// surface that reset as an uncaught error after the client already gave up.
globalThis.addEventListener("error", (e) => {
  if (String((e as ErrorEvent).error?.message ?? e.message).includes("ECONNRESET")) {
    e.preventDefault();
  }
});

/** Resolves with the permission violations the server sent this connection. */
function violations(nc: NatsConnection) {
  const seen: string[] = [];
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "error" && s.error instanceof errors.PermissionViolationError) {
        seen.push(`${s.error.operation} ${s.error.subject}`);
      }
    }
  })();
  return async (what: string) => {
    await nc.flush();
    await nc.flush();
    return seen.includes(what);
  };
}

const isPermission = (err: unknown) => {
  for (let e = err as { cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e instanceof errors.PermissionViolationError) return true;
  }
  return false;
};

async function refusedByPermission(what: string, fn: () => Promise<unknown>): Promise<string> {
  let err: unknown = null;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert(err, `${what}: not refused`);
  assert(isPermission(err), `${what}: refused, but not by permissions: ${String(err)}`);
  return what;
}

type Health = { modules?: { agents?: { desired?: Record<string, unknown> } } } | null;
const desiredHealth = (h: Health) => h?.modules?.agents?.desired ?? null;

Deno.test("hostile node - with a node's own creds (and none) every attack is refused; the daemon runs on", async () => {
  const key = createSigningKey();
  const rogue = createSigningKey();
  await using fleet = await startOperatorFleet({ specKeys: [key.publicKey] });
  const other = await fleet.addCustomer("globex");
  const kvAdmin = await new Kvm(fleet.admin).open("MR_DESIRED");
  const spec = (version: number, target: string, o: { customer?: string } = {}) => ({
    version,
    customer: o.customer ?? "acme",
    target,
    agents: [],
    settings: { heartbeat_interval: `${10 + version}s` },
  });
  // the vendor's good state before the node starts
  const siteV2 = signSpec(spec(2, "site.site1"), key.seed);
  const siteV1 = signSpec(spec(1, "site.site1"), key.seed);
  await kvAdmin.put("site.site1", JSON.stringify(siteV2));
  await kvAdmin.put("site.site2", JSON.stringify(signSpec(spec(1, "site.site2"), key.seed)));
  await kvAdmin.put("node.site1.n2", JSON.stringify(signSpec(spec(1, "node.site1.n2"), key.seed)));

  const daemon = await fleet.startNode("site1", "n1");
  await fleet.provisionNode("site1", "n2");
  const refused: string[] = [];
  try {
    await waitFor(
      async () =>
        (desiredHealth(await daemon.health() as Health)?.versions as Record<string, number>)
          ?.["site.site1"] === 2,
      30_000,
      "the daemon applied site.site1 v2",
    );
    const nc = await daemon.provisioned.connect();
    const wasRefused = violations(nc);
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);

    // --- identity
    refused.push(
      await refusedByPermission(
        "publish as another node (JetStream)",
        () => js.publish("mr.site1.n2.ev.lifecycle", "{}", { timeout: 2000 }),
      ),
    );
    nc.publish("mr.site2.n1.facts", "{}");
    assert(await wasRefused("publish mr.site2.n1.facts"));
    refused.push("publish as another site's node (core)");
    for (const subj of ["mr.site1.n2.cmd.>", "_INBOX.site1.n2.>", "mr.*.*.cmd.>", "mr.>"]) {
      const s = nc.subscribe(subj);
      assert(await wasRefused(`subscription ${subj}`), `subscribe ${subj}`);
      s.unsubscribe();
      refused.push(`subscribe ${subj}`);
    }
    // a command for n2 never reaches this connection
    await fleet.admin.request("mr.site1.n2.cmd.ping", "{}", { timeout: 300 }).catch(() => {});

    // --- election
    const election = await new Kvm(nc).open("MR_ELECTION");
    refused.push(
      await refusedByPermission(
        "write another site's election key",
        () => election.put("site.site2", "n1"),
      ),
    );
    refused.push(
      await refusedByPermission(
        "delete another site's election key",
        () => election.delete("site.site2"),
      ),
    );

    // --- governors
    const n2 = await (await fleet.provisionNode("site1", "n3")).connect();
    const victim = createGovernorClient(n2, { holder: { site: "site1", node: "n3" } });
    const slot = await victim.acquire("gate", { owner: "victim", capacity: 2 });
    assert(slot, "the victim holds a slot");
    const mine = createGovernorClient(nc, { holder: { site: "site1", node: "n1" } });
    await assertRejects(
      () => mine.release({ name: "gate", seq: slot.seq }),
      Error,
      "not held by site1.n1",
    );
    refused.push("release another holder's slot (mediator: not_yours)");
    refused.push(
      await refusedByPermission(
        "delete another holder's slot message",
        () => jsm.streams.deleteMessage(governorStream("gate"), slot.seq),
      ),
    );
    refused.push(
      await refusedByPermission(
        "overwrite another holder's slot",
        () => js.publish("mrgov.gate.site1.n3", '{"owner":"me"}', { timeout: 2000 }),
      ),
    );
    refused.push(
      await refusedByPermission(
        "purge a governor",
        () => jsm.streams.purge(governorStream("gate")),
      ),
    );
    refused.push(
      await refusedByPermission(
        "resize a governor",
        () => jsm.streams.update(governorStream("gate"), { max_msgs: 100 }),
      ),
    );
    assertEquals(
      (await createGovernorClient(fleet.admin).holders("gate")).map((h) => [h.holder, h.seq]),
      [["site1.n3", slot.seq]],
      "the victim's slot is intact",
    );
    await n2.close();

    // --- streams
    refused.push(
      await refusedByPermission("create a stream", () =>
        jsm.streams.add({
          name: "EVIL",
          subjects: ["mr.*.*.cmd.>"],
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
        })),
    );
    refused.push(
      await refusedByPermission(
        "update a stream",
        () => jsm.streams.update("MR_EVENTS", { max_msgs: 1 }),
      ),
    );
    refused.push(
      await refusedByPermission("purge a stream", () => jsm.streams.purge("MR_EVENTS")),
    );
    refused.push(
      await refusedByPermission("delete a stream", () => jsm.streams.delete("MR_EVENTS")),
    );
    refused.push(
      await refusedByPermission(
        "read other nodes' events",
        () => jsm.streams.getMessage("MR_EVENTS", { seq: 1 }),
      ),
    );

    // --- desired state
    const desired = await new Kvm(nc).open("MR_DESIRED", { allow_direct: true });
    refused.push(
      await refusedByPermission(
        "read another site's desired state",
        () => desired.get("site.site2"),
      ),
    );
    refused.push(
      await refusedByPermission(
        "read another node's desired state",
        () => desired.get("node.site1.n2"),
      ),
    );
    refused.push(
      await refusedByPermission(
        "write its own desired state",
        () => desired.put("node.site1.n1", JSON.stringify(siteV2)),
      ),
    );

    // --- rollout outcomes
    const rollout = await new Kvm(nc).open("MR_ROLLOUT");
    await rollout.put("site1.n1.agent", '{"ok":true}'); // its own: allowed
    refused.push(
      await refusedByPermission(
        "record another node's rollout outcome",
        () => rollout.put("site1.n2.agent", '{"ok":false}'),
      ),
    );

    // --- other customers, the system account, no credentials
    const globexEvents = (await (await jetstreamManager(other.admin)).streams.info("MR_EVENTS"))
      .state.messages;
    nc.publish("$SYS.REQ.SERVER.PING", "");
    assert(await wasRefused("publish $SYS.REQ.SERVER.PING"));
    refused.push("reach the system account");
    await assertRejects(() => connect({ servers: fleet.server.url, timeout: 3000 }));
    refused.push("connect without credentials");
    assert(!nc.isClosed(), "the attacker's connection survived its refusals");
    await nc.close();
    assertEquals(
      (await (await jetstreamManager(other.admin)).streams.info("MR_EVENTS")).state.messages,
      globexEvents,
      "nothing reached another customer",
    );

    // --- the daemon refuses misplaced, foreign, forged and replayed specs; keeps v2
    const rejections = async () =>
      Number(desiredHealth(await daemon.health() as Health)?.rejected ?? 0);
    const lastCode = async () =>
      (desiredHealth(await daemon.health() as Health)?.last_rejection as { code?: string } | null)
        ?.code;
    const expectRejected = async (what: string, code: string, put: () => Promise<unknown>) => {
      const before = await rejections();
      await put();
      await waitFor(async () => (await rejections()) > before, 20_000, `${what} rejected`);
      assertEquals(await lastCode(), code, what);
      refused.push(what);
    };
    await expectRejected(
      "a valid site.* spec replayed into a node.* key",
      "wrong_target",
      () => kvAdmin.put("node.site1.n1", JSON.stringify(siteV2)),
    );
    await expectRejected(
      "a spec for another customer",
      "wrong_customer",
      () =>
        kvAdmin.put(
          "node.site1.n1",
          JSON.stringify(signSpec(spec(5, "node.site1.n1", { customer: "globex" }), key.seed)),
        ),
    );
    await expectRejected(
      "a spec signed by an untrusted key",
      "untrusted_key",
      () => kvAdmin.put("site.site1", JSON.stringify(signSpec(spec(9, "site.site1"), rogue.seed))),
    );
    await expectRejected(
      "an older version of its own key",
      "stale_version",
      () => kvAdmin.put("site.site1", JSON.stringify(siteV1)),
    );
    const h = desiredHealth(await daemon.health() as Health)!;
    assertEquals(h.versions, { "site.site1": 2 }, "the last good state stays in force");

    // a restart with an empty cache: the floor survives and v1 is still refused
    await kvAdmin.purge("node.site1.n1"); // (the foreign spec there would be refused first)
    assertEquals(await daemon.stop(), 0);
    await Deno.remove(join(daemon.stateDir, "desired", "state.json"));
    const again = await fleet.startNode("site1", "n1");
    try {
      await waitFor(
        async () => Number(desiredHealth(await again.health() as Health)?.rejected ?? 0) > 0,
        30_000,
        "v1 refused after the restart",
      );
      const h2 = desiredHealth(await again.health() as Health)!;
      assertEquals((h2.last_rejection as { code: string }).code, "stale_version");
      assertEquals((h2.floors as Record<string, number>)["site.site1"], 2);
      const floorsFile = join(again.stateDir, "desired", "floors.json");
      assertEquals((await Deno.stat(floorsFile)).mode! & 0o777, 0o600, "floors written 0600");
      refused.push("a lower version after a restart with an empty cache");
      // the vendor recovers by publishing above the floor
      await kvAdmin.put("site.site1", JSON.stringify(signSpec(spec(3, "site.site1"), key.seed)));
      await waitFor(
        async () =>
          (desiredHealth(await again.health() as Health)?.versions as Record<string, number>)
            ?.["site.site1"] === 3,
        20_000,
        "v3 applied",
      );
      const status = await Promise.race([
        again.status.then(() => "exited"),
        new Promise((r) => setTimeout(() => r("running"), 200)),
      ]);
      assertEquals(status, "running", "the daemon is still running");
      // nothing lost: its spool drained and nothing was parked as undeliverable
      await waitFor(
        async () => {
          const sp = (await again.health())?.spool as
            | { depth?: number; dead_letters?: number; dropped?: number }
            | undefined;
          return sp?.depth === 0 && sp.dead_letters === 0 && sp.dropped === 0;
        },
        20_000,
        "spool drained, no dead letters, nothing dropped",
      );
      // its events still flow: the rejections are in MR_EVENTS
      const ev = await jetstreamManager(fleet.admin);
      const last = await ev.streams.getMessage("MR_EVENTS", {
        last_by_subj: "mr.site1.n1.ev.desired",
      });
      assertEquals(last?.json<{ type: string }>().type, "io.machineroom.desired.v1.rejected");
    } finally {
      await again[Symbol.asyncDispose]();
    }
  } finally {
    await Promise.resolve(daemon[Symbol.asyncDispose]()).catch(() => {});
  }
  assert(refused.length >= 25, `${refused.length} attacks tried: ${refused.join("; ")}`);
  assertEquals(new Set(refused).size, refused.length, "distinct attacks");
});
