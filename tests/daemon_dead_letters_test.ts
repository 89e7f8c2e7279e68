// A running daemon parks what the server refuses for good and shows it in health and in
// `machine-room spool dead-letters`; retry/purge work while the daemon keeps running.
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { ensureStreams } from "../provisioner/streams.ts";
import { streamIds } from "../src/replicator/testdata/streams.ts";

const dec = new TextDecoder();
const ROOT = new URL("../", import.meta.url).pathname;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

type Health = {
  status: string;
  reasons: string[];
  spool: { depth: number; dead_letters: number };
  replicator: { parked: number };
};

Deno.test("daemon - an oversized submission is parked, shown in health and spool dead-letters; the rest flows, also across a server restart", async () => {
  await using srv = await startNatsServer({ config: "max_payload: 16384" });
  const nc = await connect({ servers: srv.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  try {
    await ensureStreams(nc);
    await using node = await startNode({ natsUrl: srv.url, node: "dl" });
    const dir = node.stateDir;
    const big = await cli([
      "submit",
      "orders",
      JSON.stringify({ pad: "x".repeat(40_000) }),
      "--state-dir",
      dir,
    ]);
    assertEquals(big.code, 0, big.stderr);
    const bigId = JSON.parse(big.stdout).queued as string;
    const small = await cli(["submit", "orders", '{"ok":true}', "--state-dir", dir]);
    const smallId = JSON.parse(small.stdout).queued as string;
    // the big one can be parked before the second `submit` process has even dropped its
    // file (each CLI call is a process start), so wait for the small one to be stored too
    const { h, ids } = await waitFor(
      async () => {
        const d = await node.health() as Health | null;
        if (!d || d.spool.dead_letters !== 1 || d.spool.depth !== 0) return null;
        const ids = await streamIds(nc, "MR_SUBMISSION");
        return ids.includes(smallId) ? { h: d, ids } : null;
      },
      30_000,
      "parked in health, the small one stored",
    );
    assertEquals(h.status, "degraded");
    assert(h.reasons.some((r) => r.includes("dead letters")), h.reasons.join("; "));
    assertEquals(h.replicator.parked, 1);
    assert(ids.includes(smallId) && !ids.includes(bigId), JSON.stringify(ids));
    // listed through the running daemon
    const ls = await cli(["spool", "dead-letters", "--state-dir", dir, "--json"]);
    assertEquals(ls.code, 0, ls.stderr);
    const doc = JSON.parse(ls.stdout);
    assertEquals(doc.dead_letters.length, 1);
    assertEquals(doc.dead_letters[0].id, bigId);
    assertEquals(doc.dead_letters[0].reason, "too_large");
    assertEquals(doc.dead_letters[0].subject, "mr.site1.dl.submit.orders");
    const human = await cli(["spool", "dead-letters", "--state-dir", dir]);
    assert(human.stdout.includes(bigId) && human.stdout.includes("too_large"), human.stdout);
    // a retry parks it again (still too large); a purge removes it
    const re = await cli(["spool", "dead-letters", "--state-dir", dir, "--retry", "--json"]);
    assertEquals(JSON.parse(re.stdout).retried, 1);
    await waitFor(
      async () => {
        const d = await node.health() as Health | null;
        return d && d.replicator.parked === 2 && d.spool.dead_letters === 1;
      },
      20_000,
      "parked again",
    );
    const bad = await cli(["spool", "dead-letters", "--state-dir", dir, "--retry", "--purge"]);
    assertEquals(bad.code, 2, bad.stderr);
    const pu = await cli([
      "spool",
      "dead-letters",
      "--state-dir",
      dir,
      "--purge",
      "--id",
      bigId,
      "--json",
    ]);
    assertEquals(JSON.parse(pu.stdout).purged, 1);
    await waitFor(
      async () => {
        const d = await node.health() as Health | null;
        return d && d.spool.dead_letters === 0 && d.status === "healthy";
      },
      20_000,
      "healthy again",
    );
    // a server restart mid-stream: nothing dropped, duplicated or parked
    const { ulid } = await import("../src/util/ulid.ts");
    const burst: string[] = [];
    const drop = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const id = ulid();
        burst.push(id);
        await Deno.writeTextFile(
          join(dir, "outbox", `${id}.json`),
          JSON.stringify({ subject: "burst", payload: { i } }),
        );
      }
    };
    await drop(100);
    await srv.stop();
    await drop(100);
    await new Promise((r) => setTimeout(r, 1500));
    await srv.restart();
    await waitFor(
      async () => {
        const got: string[] = await streamIds(nc, "MR_SUBMISSION").catch(() => []);
        return burst.every((id) => got.includes(id));
      },
      40_000,
      "every burst submission after the restart",
    );
    const stored = await streamIds(nc, "MR_SUBMISSION");
    assertEquals(new Set(stored).size, stored.length, "no duplicates");
    const final = await waitFor(
      async () => {
        const d = await node.health() as Health | null;
        return d && d.spool.depth === 0 ? d : null;
      },
      20_000,
      "drained",
    );
    assertEquals(final.spool.dead_letters, 0, "nothing transient was parked");
    assertEquals(final.replicator.parked, 2);
    // the daemon is still running and serving
    const st = await cli(["status", "--state-dir", dir, "--json"]);
    assertEquals(st.code, 0);
    assertEquals(JSON.parse(st.stdout).pid, node.pid);
  } finally {
    await nc.close();
  }
});
