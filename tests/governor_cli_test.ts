// `machine-room governor run` and `mr-saas governor add|view` in the production topology:
// operator mode, each run with a provisioned node's own credentials (half from its node
// config, half with --server --creds), the mediator of `mr-saas serve` releasing slots.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { join } from "node:path";
import { tempDir } from "./helpers/nats_server.ts";
import { waitFor } from "./helpers/daemon.ts";
import { startOperatorFleet } from "./helpers/operator_fleet.ts";
import { createGovernorClient } from "../src/governor/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;

function governorRun(args: string[], cmd: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), "governor", "run", ...args, "--", ...cmd],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

/** The max number of intervals open at once. */
function maxOverlap(intervals: { enter: bigint; exit: bigint }[]): number {
  const points = intervals.flatMap((i) => [
    { t: i.enter, d: 1 },
    { t: i.exit, d: -1 },
  ]).sort((a, b) => (a.t === b.t ? a.d - b.d : a.t < b.t ? -1 : 1));
  let cur = 0;
  let max = 0;
  for (const p of points) max = Math.max(max, cur += p.d);
  return max;
}

Deno.test("governor run - 6 concurrent commands, capacity 2: never more than 2 inside", async () => {
  await using fleet = await startOperatorFleet();
  await using dir = await tempDir();
  const log = join(dir.path, "overlaps.log");
  // Each CMD records its own enter and exit (ns clock) in the shared file.
  const script = `echo "enter $1 $(date +%s%N)" >> ${log}; sleep 0.4; ` +
    `echo "exit $1 $(date +%s%N)" >> ${log}; exit $2`;
  const nodes = await Promise.all(
    Array.from({ length: 6 }, (_, i) => fleet.provisionNode("plant", `n${i}`)),
  );
  const procs = nodes.map((n, i) =>
    governorRun(
      [
        "gate",
        "--capacity",
        "2",
        "--timeout",
        "60",
        ...(i % 2
          ? ["--config", n.configPath]
          : ["--server", fleet.server.url, "--creds", n.credsPath]),
      ],
      ["sh", "-c", script, "sh", `p${i}`, String(i === 5 ? 7 : 0)],
    )
  );
  const outs = await Promise.all(procs.map((p) => p.output()));
  const dec = new TextDecoder();
  outs.forEach((o, i) =>
    assertEquals(o.code, i === 5 ? 7 : 0, `p${i}: ${dec.decode(o.stderr).slice(-500)}`)
  );
  const lines = (await Deno.readTextFile(log)).trim().split("\n");
  assertEquals(lines.length, 12);
  const by = new Map<string, { enter: bigint; exit: bigint }>();
  for (const l of lines) {
    const [what, who, t] = l.split(" ");
    const e = by.get(who!) ?? { enter: 0n, exit: 0n };
    e[what as "enter" | "exit"] = BigInt(t!);
    by.set(who!, e);
  }
  assertEquals(by.size, 6);
  for (const [who, e] of by) assert(e.enter > 0n && e.exit > e.enter, `${who} ${e}`);
  const overlap = maxOverlap([...by.values()]);
  assert(overlap <= 2, `${overlap} commands ran at once`);
  assertEquals(overlap, 2, "both slots were used");
  // Every slot was released (by the mediator): the governor is empty.
  assertEquals((await createGovernorClient(fleet.admin).holders("gate")).length, 0);
});

Deno.test("governor run - timeout exits 1; a killed holder's slot frees after the lease", async () => {
  await using fleet = await startOperatorFleet();
  await using dir = await tempDir();
  const [n1, n2] = await Promise.all([
    fleet.provisionNode("plant", "n1"),
    fleet.provisionNode("plant", "n2"),
  ]);
  const pidFile = join(dir.path, "cmd.pid");
  const holder = governorRun(
    ["crash", "--capacity", "1", "--lease", "3s", "--config", n1.configPath],
    ["sh", "-c", `echo $$ > ${pidFile}; exec sleep 60`],
  );
  let cmdPid = 0;
  try {
    cmdPid = Number(
      await waitFor(
        async () => {
          try {
            return (await Deno.readTextFile(pidFile)).trim();
          } catch {
            return "";
          }
        },
        30_000,
        "the holder's command",
      ),
    );
    // While held, another run gives up after its timeout with exit 1 and a clear message.
    const waiting = await governorRun(
      ["crash", "--capacity", "1", "--lease", "3s", "--timeout", "1", "--config", n2.configPath],
      ["true"],
    ).output();
    assertEquals(waiting.code, 1);
    assertStringIncludes(
      new TextDecoder().decode(waiting.stderr),
      'waiting for a slot of governor "crash"',
    );
    // kill -9: no release; the slot must come back once its lease (3 s) expires.
    holder.kill("SIGKILL");
    await holder.status;
    const after = await governorRun(
      ["crash", "--capacity", "1", "--lease", "3s", "--timeout", "30", "--config", n2.configPath],
      ["sh", "-c", "echo ran"],
    ).output();
    assertEquals(after.code, 0, new TextDecoder().decode(after.stderr));
    assertEquals(new TextDecoder().decode(after.stdout).trim(), "ran");
  } finally {
    try {
      holder.kill("SIGKILL");
    } catch { /* gone */ }
    // The orphaned CMD holds the pipes open: end it before draining them.
    if (cmdPid > 0) {
      try {
        Deno.kill(cmdPid, "SIGKILL");
      } catch { /* gone */ }
    }
    await holder.output().catch(() => {});
  }
});

Deno.test("governor run - bad input exits 2 naming the problem", async () => {
  const bad = await governorRun(["Bad.Name", "--capacity", "2", "--server", "nats://127.0.0.1:1"], [
    "true",
  ]).output();
  assertEquals(bad.code, 2);
  assertStringIncludes(new TextDecoder().decode(bad.stderr), 'Invalid governor name: "Bad.Name"');
  const cap = await governorRun(["ok", "--capacity", "0", "--server", "nats://127.0.0.1:1"], [
    "true",
  ]).output();
  assertEquals(cap.code, 2);
  assertStringIncludes(new TextDecoder().decode(cap.stderr), "--capacity must be an integer");
});

Deno.test("mr-saas governor add/view - creates a governor and lists its holders", async () => {
  await using fleet = await startOperatorFleet();
  const saas = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "provisioner/main.ts"),
        "--server",
        fleet.server.url,
        "--creds",
        fleet.adminCreds,
        ...args,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
  const add = await saas(["governor", "add", "maint", "--capacity", "3", "--lease", "2m"]);
  assertEquals(add.code, 0, new TextDecoder().decode(add.stderr));
  assertStringIncludes(new TextDecoder().decode(add.stdout), "governor maint: created");
  const nc = await (await fleet.provisionNode("plant", "n1")).connect();
  try {
    const gov = createGovernorClient(nc, { holder: { site: "plant", node: "n1" } });
    // a node cannot raise the vendor's capacity: the governor keeps 3
    const lease = await gov.acquire("maint", { owner: "plant.n1", capacity: 50 });
    assert(lease);
    const view = await saas(["governor", "view", "maint", "--json"]);
    assertEquals(view.code, 0, new TextDecoder().decode(view.stderr));
    const v = JSON.parse(new TextDecoder().decode(view.stdout));
    assertEquals([v.capacity, v.leaseMs, v.held], [3, 120_000, 1]);
    assertEquals(v.holders.map((h: { owner: string; holder: string }) => [h.owner, h.holder]), [
      ["plant.n1", "plant.n1"],
    ]);
    const missing = await saas(["governor", "view", "nope"]);
    assertEquals(missing.code, 2);
    assertStringIncludes(
      new TextDecoder().decode(missing.stderr),
      'Governor "nope" does not exist',
    );
  } finally {
    await nc.close();
  }
});
