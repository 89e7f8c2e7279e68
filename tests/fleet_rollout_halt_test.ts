// Rollouts that stop themselves, in the production topology: operator mode, six daemons
// with their own provisioned credentials (node permissions: own MR_ROLLOUT keys, holder-
// scoped governor slots), the agent compiled into the binary (builtin:<name>, hash checked).
// A good version rolls out 2 at a time to all six; a version whose mr_init fails halts
// after max_failures (2) with four nodes never taking it, and every node runs the previous
// version. `mr-saas rollout status --agent A --site S --json` shows it.
import { assert, assertEquals } from "@std/assert";
import { Kvm } from "@nats-io/kv";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { tempDir } from "./helpers/nats_server.ts";
import { type RunningNode, waitFor } from "./helpers/daemon.ts";
import { startOperatorFleet } from "./helpers/operator_fleet.ts";
import { compileWat } from "./helpers/wat.ts";
import { createGovernorClient } from "../src/governor/mod.ts";
import { createSigningKey, signSpec } from "../src/desired/envelope.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

const module = (marker: string, init: string) =>
  compileWat(`(module
  (memory (export "memory") 1)
  (data (i32.const 16) "${marker}")
  (func (export "mr_init") (result i32) ${init} (i32.const 0))
  (func (export "mr_reconcile") (result i32) (i32.const 0)))`);

type Ev = { type: string; time: string; mrnode: string; data: Record<string, unknown> };

Deno.test("fleet - a rollout halts itself after max_failures; good versions roll out 2 at a time", async () => {
  const key = createSigningKey();
  await using fleet = await startOperatorFleet({ specKeys: [key.publicKey] });
  await using dir = await tempDir();
  const mods: Record<string, { sha256: string; size: number }> = {};
  const spin = `(local $i i32) (block $d (loop $l
    (br_if $d (i32.ge_u (local.get $i) (i32.const 30000000)))
    (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)))`;
  for (
    const [name, init] of [["v1", ""], ["v2", spin], ["bad", "(unreachable)"]] as const
  ) {
    const bytes = await module(name, init);
    await Deno.writeFile(join(dir.path, `${name}.wasm`), bytes);
    mods[name] = { sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.length };
  }
  const admin = fleet.admin;
  await createGovernorClient(admin).ensure("rollout", 2, 600_000);
  const events: Ev[] = [];
  admin.subscribe("mr.site1.*.ev.>", {
    callback: (_e, m) => {
      events.push(m.json<Ev>());
    },
  });
  const kv = await new Kvm(admin).open("MR_DESIRED");
  const publish = (version: number, mod: string) =>
    kv.put(
      "site.site1",
      JSON.stringify(signSpec({
        version,
        customer: fleet.customer,
        target: "site.site1",
        agents: [{
          name: "roll",
          wasm: { ...mods[mod]!, url: `builtin:${mod}` },
          triggers: { interval: "1m" },
          limits: { fuel: 4_000_000_000, timeout_ms: 30_000 },
          rollout: { governor: "rollout", capacity: 2, max_failures: 2, auto_rollback: true },
        }],
      }, key.seed)),
    );
  const outcomes = async () => {
    const rk = await new Kvm(admin).open("MR_ROLLOUT");
    const out: Record<string, { sha256: string; state: string; code: string | null }> = {};
    for await (const k of await rk.keys("site1.*.roll")) {
      const e = await rk.get(k);
      if (e?.operation === "PUT") out[k.split(".")[1]!] = e.json();
    }
    return out;
  };
  const count = async (sha: string, state: string) =>
    Object.values(await outcomes()).filter((r) => r.sha256 === sha && r.state === state).length;

  await publish(1, "v1");
  const nodes: RunningNode[] = [];
  try {
    // enrol and start six daemons (their own creds; two at a time to spare the machine)
    for (let i = 1; i <= 6; i += 2) {
      nodes.push(
        ...await Promise.all([i, i + 1].map((n) =>
          fleet.startNode("site1", `n${n}`, {
            entry: join(ROOT, "tests/fixtures/builtin_main.ts"),
            env: { MR_TEST_BUILTIN_DIR: dir.path },
          })
        )),
      );
    }
    await waitFor(async () => (await count(mods.v1!.sha256, "healthy")) === 6, 90_000, "v1 x6");

    // a good version: every node, never more than 2 swapping at once
    await publish(2, "v2");
    await waitFor(async () => (await count(mods.v2!.sha256, "healthy")) === 6, 180_000, "v2 x6");
    const updated = events.filter((e) =>
      e.type === "io.machineroom.agent.v1.updated" && e.data.to === mods.v2!.sha256
    );
    assertEquals(new Set(updated.map((u) => u.mrnode)).size, 6);
    const enters = events.filter((e) =>
      e.type === "io.machineroom.governor.v1.enter" && e.data.governor === "rollout"
    );
    const intervals = updated.map((u) => {
      const enter = enters.filter((e) => e.mrnode === u.mrnode && e.time <= u.time).at(-1)!;
      return [Date.parse(enter.time), Date.parse(u.time)] as const;
    });
    const overlap = Math.max(
      ...intervals.map(([s]) => intervals.filter(([a, b]) => a <= s && s < b).length),
    );
    assert(overlap <= 2, `at most 2 swaps at once, saw ${overlap}`);

    // a version whose mr_init fails: halts after 2 failures, four nodes never take it
    await publish(3, "bad");
    await waitFor(async () => (await count(mods.bad!.sha256, "failed")) >= 2, 90_000, "2 failed");
    const held = async () => {
      let n = 0;
      for (const node of nodes) {
        const h = await node.health();
        const a = ((h?.modules as { agents?: { agents?: { held: string }[] } })?.agents?.agents ??
          [])[0];
        if (a?.held === "rollout_halted") n++;
      }
      return n;
    };
    await waitFor(async () => (await held()) === 4, 120_000, "4 nodes hold back")
      .catch(async (err) => {
        // name what each node shows, and its last rollout/governor log lines
        const seen = await Promise.all(nodes.map(async (n) => {
          const a = ((await n.health())?.modules as { agents?: { agents?: unknown[] } })
            ?.agents?.agents?.[0] as Record<string, unknown> | undefined;
          const lines = n.logs().filter((l) => /rollout|governor|agent/.test(l)).slice(-6);
          return `${n.node}: ${a?.state}/${a?.held}/${a?.last_error}\n  ${lines.join("\n  ")}`;
        }));
        throw new Error(`${(err as Error).message}\n${seen.join("\n")}`);
      });
    const oc = await outcomes();
    const failed = Object.entries(oc).filter(([, r]) => r.sha256 === mods.bad!.sha256);
    assertEquals(failed.length, 2, "only the first two nodes tried the bad version");
    for (const [, r] of failed) {
      assertEquals(r.state, "failed");
      assertEquals(r.code, "trap");
    }
    // every node runs the previous version (the failed ones never left it)
    for (const node of nodes) {
      const h = await node.health();
      const a = (h?.modules as { agents: { agents: { sha256: string; status: string }[] } })
        .agents.agents[0]!;
      assertEquals([a.status, a.sha256], ["running", mods.v2!.sha256], node.node);
    }

    // the vendor's view
    const o = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "provisioner/main.ts"),
        "--server",
        fleet.server.url,
        "--creds",
        fleet.adminCreds,
        "rollout",
        "status",
        "--agent",
        "roll",
        "--site",
        "site1",
        "--json",
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    assertEquals(o.code, 0, dec.decode(o.stderr));
    const st = JSON.parse(dec.decode(o.stdout));
    assertEquals(st.outcomes.halted, true);
    assertEquals(st.outcomes.failed, 2);
    assertEquals(st.outcomes.limit, 2);
    assertEquals(st.outcomes.sha256, mods.bad!.sha256);
    assertEquals(Object.keys(st.outcomes.nodes).length, 6);
  } finally {
    for (const n of nodes) await n.stop().catch(() => {});
  }
});
