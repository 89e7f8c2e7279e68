import { connect } from "@nats-io/transport-node";
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { join } from "node:path";
import { startNatsServer, tempDir } from "./helpers/nats_server.ts";
import { waitFor } from "./helpers/daemon.ts";
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
  await using srv = await startNatsServer();
  await using dir = await tempDir();
  const log = join(dir.path, "overlaps.log");
  // Each CMD records its own enter and exit (ns clock) in the shared file.
  const script = `echo "enter $1 $(date +%s%N)" >> ${log}; sleep 0.4; ` +
    `echo "exit $1 $(date +%s%N)" >> ${log}; exit $2`;
  // Half connect from a node config, half with --server.
  const cfg = join(dir.path, "node.json");
  await Deno.writeTextFile(
    cfg,
    JSON.stringify({
      customer: "acme",
      site: "plant",
      node: "n1",
      state_dir: dir.path,
      nats: { servers: [srv.url] },
    }),
  );
  const procs = Array.from({ length: 6 }, (_, i) =>
    governorRun(
      [
        "gate",
        "--capacity",
        "2",
        "--timeout",
        "60",
        ...(i % 2 ? ["--config", cfg] : [
          "--server",
          srv.url,
        ]),
      ],
      ["sh", "-c", script, "sh", `p${i}`, String(i === 5 ? 7 : 0)],
    ));
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
  // Every slot was released: the governor is empty.
  const nc = await connect({ servers: srv.url });
  assertEquals((await createGovernorClient(nc).holders("gate")).length, 0);
  await nc.close();
});

Deno.test("governor run - timeout exits 1; a killed holder's slot frees after the lease", async () => {
  await using srv = await startNatsServer();
  await using dir = await tempDir();
  const pidFile = join(dir.path, "cmd.pid");
  const holder = governorRun(
    ["crash", "--capacity", "1", "--lease", "3s", "--server", srv.url],
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
      ["crash", "--capacity", "1", "--lease", "3s", "--timeout", "1", "--server", srv.url],
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
      ["crash", "--capacity", "1", "--lease", "3s", "--timeout", "30", "--server", srv.url],
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
  await using srv = await startNatsServer();
  const saas = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "provisioner/main.ts"), "--server", srv.url, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
  const add = await saas(["governor", "add", "maint", "--capacity", "3", "--lease", "2m"]);
  assertEquals(add.code, 0, new TextDecoder().decode(add.stderr));
  assertStringIncludes(new TextDecoder().decode(add.stdout), "governor maint: created");
  const nc = await connect({ servers: srv.url });
  try {
    const lease = await createGovernorClient(nc).acquire("maint", { owner: "plant.n1" });
    assert(lease);
    const view = await saas(["governor", "view", "maint", "--json"]);
    assertEquals(view.code, 0, new TextDecoder().decode(view.stderr));
    const v = JSON.parse(new TextDecoder().decode(view.stdout));
    assertEquals([v.capacity, v.leaseMs, v.held], [3, 120_000, 1]);
    assertEquals(v.holders.map((h: { owner: string }) => h.owner), ["plant.n1"]);
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
