// Daemon benchmarks (issue 3): idle RSS and CPU of `machine-room run` with no agents,
// facts collection time and the longest event-loop stall while collecting.
// Numbers are printed as `daemon: …` lines and quoted in README.
import { connect } from "@nats-io/transport-node";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { startNode } from "../tests/helpers/daemon.ts";
import { ensureStreams } from "../provisioner/mod.ts";
import { collectFacts } from "../src/facts/mod.ts";

const TICKS = 100; // Linux USER_HZ

async function procStat(pid: number): Promise<{ rss: number; cpuTicks: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = (await Deno.readTextFile(`/proc/${pid}/stat`)).split(") ")[1]!.split(" ");
  // fields after "pid (comm) ": state is [0], utime [11], stime [12]
  return { rss: rssKb * 1024, cpuTicks: Number(stat[11]) + Number(stat[12]) };
}

{
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  await ensureStreams(nc);
  await nc.close();
  await using node = await startNode({
    natsUrl: srv.url,
    node: "bench",
    config: { settings: { heartbeat_interval: "30s", facts_interval: "5m" } },
  });
  await new Promise((r) => setTimeout(r, 5_000)); // settle
  const a = await procStat(node.pid);
  const WINDOW_S = 20;
  await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
  const b = await procStat(node.pid);
  const cpuPct = ((b.cpuTicks - a.cpuTicks) / TICKS) / WINDOW_S * 100;
  // RSS counts the mapped deno executable's pages (shared with every other Deno process);
  // PSS splits shared pages between their users; anonymous is the daemon's own memory
  const roll = await Deno.readTextFile(`/proc/${node.pid}/smaps_rollup`);
  const kb = (k: string) =>
    Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(roll)?.[1] ?? 0) / 1024;
  console.log(
    `daemon: idle RSS with no agents ${(b.rss / 1048576).toFixed(1)} MB (target ≤ 70 MB; ` +
      `PSS ${kb("Pss").toFixed(1)} MB, private anonymous ${kb("Anonymous").toFixed(1)} MB, ` +
      `file-backed shared ${kb("Shared_Clean").toFixed(1)} MB); ` +
      `idle CPU ${cpuPct.toFixed(2)}% of one core over ${WINDOW_S} s`,
  );
}

{
  await collectFacts(); // warm the module caches
  const runs: number[] = [];
  let maxLag = 0;
  for (let i = 0; i < 5; i++) {
    let last = performance.now();
    const iv = setInterval(() => {
      const now = performance.now();
      maxLag = Math.max(maxLag, now - last - 5);
      last = now;
    }, 5);
    const t = performance.now();
    await collectFacts();
    runs.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 20)); // let the interval observe a final stall
    clearInterval(iv);
  }
  runs.sort((x, y) => x - y);
  console.log(
    `daemon: facts collection p50 ${
      runs[2]!.toFixed(0)
    } ms; longest event-loop stall during collection ${maxLag.toFixed(1)} ms`,
  );
}

Deno.bench("facts - collectFacts()", { n: 5, warmup: 1 }, async () => {
  await collectFacts();
});
