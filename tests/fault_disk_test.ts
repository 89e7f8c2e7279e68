/**
 * Fault matrix: the spool's disk fills (a 24 MiB tmpfs as the state dir; needs root to mount,
 * reported as ignored otherwise).
 *
 * Promised: while NATS is unreachable and an agent-like producer keeps submitting
 * low-priority data, the spool stays within its share of the disk (src/spool/disk_budget.ts),
 * health turns degraded and names it, the lowest-priority oldest data is dropped and
 * counted, the daemon stays alive and keeps writing its health, and the high-priority
 * lifecycle events (startup) still reach JetStream once NATS is back.
 */
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { readStream } from "./helpers/stream_read.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { createUlidFactory } from "../src/util/ulid.ts";
import { atomicWrite } from "../src/util/atomic_write.ts";

const ulid = createUlidFactory();

async function canMount(): Promise<boolean> {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return false;
  const probe = await Deno.makeTempDir({ prefix: "mr-tmpfs-probe-" });
  try {
    const o = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!o.success) return false;
    await new Deno.Command("umount", { args: [probe] }).output();
    return true;
  } catch {
    return false;
  } finally {
    await Deno.remove(probe).catch(() => {});
  }
}

const mountable = await canMount();

Deno.test({
  name: "fault - the spool's disk fills: degraded, lowest priority dropped, daemon alive",
  ignore: !mountable,
  async fn() {
    // the server starts later, on a port chosen now (a restart reuses it)
    await using srv = await startNatsServer();
    const setup = await connect({ servers: srv.url });
    await ensureStreams(setup);
    await setup.close();
    await srv.stop();
    const mnt = await Deno.makeTempDir({ prefix: "mr-disk-full-" });
    const m = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", mnt],
    }).output();
    assert(m.success, "mount tmpfs");
    try {
      await Deno.mkdir(join(mnt, "state"), { mode: 0o700 });
      const node = await startNode({
        natsUrl: srv.url,
        stateDir: join(mnt, "state"),
        waitConnected: false,
        config: { settings: { heartbeat_interval: "30s", facts_interval: "5m" } },
      });
      try {
        // 150 submissions of 40 KB at priority 4 = 6 MB, more than the spool's share, dropped
        // 10 at a time as `machine-room submit` does (atomic files), each batch once the
        // daemon has imported the last one
        const pad = "x".repeat(40_000);
        const outbox = join(node.stateDir, "outbox");
        for (let i = 0; i < 150; i++) {
          const id = ulid();
          await atomicWrite(
            join(outbox, `${id}.json`),
            JSON.stringify({ subject: "bulk", payload: { i, pad }, priority: 4 }),
          );
          if (i % 10 === 9) {
            await waitFor(
              async () =>
                (await Array.fromAsync(Deno.readDir(outbox))).every((e) =>
                  !e.name.endsWith(".json")
                ),
              20_000,
              `batch ${i} imported`,
            );
          }
        }
        type H = {
          status: string;
          reasons: string[];
          pid: number;
          time: string;
          spool: { dropped: number; max_bytes: number; bytes: number };
        };
        const h = await waitFor(
          async () => {
            const x = await node.health() as H | null;
            return x && x.spool.dropped > 0 ? x : null;
          },
          30_000,
          "drops counted in health",
        ).catch(async (err) => {
          const x = await node.health() as H;
          throw new Error(`${err.message}: ${JSON.stringify(x.spool)} ${x.reasons}`);
        });
        assert(h.status !== "healthy", JSON.stringify(h));
        assert(
          h.reasons.some((r) => r.includes("dropped")) &&
            h.reasons.some((r) => r.includes("free disk space")),
          JSON.stringify(h.reasons),
        );
        assert(h.spool.max_bytes < 4 * 1024 * 1024, `cap ${h.spool.max_bytes}`);
        // alive: the process runs and its health keeps being rewritten
        const t1 = h.time;
        await waitFor(
          async () => ((await node.health()) as H | null)?.time !== t1,
          10_000,
          "health rewritten",
        );
        assertEquals((await node.health() as H).pid, node.pid);
        assert(!node.logs().some((l) => l.includes('"level":"fatal"')));

        // NATS back: the startup event (priority 1) was kept and arrives
        await srv.restart();
        const nc = await connect({ servers: srv.url });
        try {
          await waitFor(
            async () =>
              (await readStream(nc, "MR_EVENTS", "mr.site1.node1.ev.lifecycle")).some((e) =>
                e.json.type === "io.machineroom.lifecycle.v1.startup"
              ),
            30_000,
            "startup event after the outage",
          );
        } finally {
          await nc.close();
        }
      } finally {
        await node.stop();
      }
    } finally {
      await new Deno.Command("umount", { args: ["-l", mnt] }).output();
      await Deno.remove(mnt, { recursive: true }).catch(() => {});
    }
  },
});
