/// <reference lib="dom" />
// Console benchmarks (issue 15), with 1,000 simulated nodes in one customer account and
// `mr-saas console` as its own process, driven by headless Chromium:
// - fleet page: navigation → all 1,000 rows in the table ("first meaningful paint");
// - live tail: JetStream PubAck of a new event → its row in the /events page;
// - a 24 h metrics graph of one node (2,880 samples at 30 s) → uPlot drawn;
// - the console process's RSS and PSS with the 1,000-node view loaded.
// Numbers are printed as `console: …` lines and quoted in README.
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { simEvent, simulateMetrics, simulateNodes } from "../tests/helpers/sim_fleet.ts";
import { launchBrowser } from "../tests/helpers/browser.ts";
import { ensureStreams } from "../provisioner/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const NODES = 1000;
// the flags `deno task saas` runs mr-saas with
const SAAS_FLAGS = (JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.saas as string)
  .split(" ").filter((a) => a.startsWith("--v8-flags") || a === "--no-code-cache");

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function memory(pid: number): Promise<{ rss: number; pss: number }> {
  const roll = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`);
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(roll)?.[1] ?? 0);
  return { rss: kb("Rss") / 1024, pss: kb("Pss") / 1024 };
}

{
  await using srv = await startNatsServer();
  const nc = await connect({ servers: srv.url });
  await ensureStreams(nc);
  const nodes = Array.from({ length: NODES }, (_, i) => ({ site: `s${i % 10}`, node: `n${i}` }));
  await simulateNodes(nc, "acme", nodes);
  await simulateMetrics(nc, nodes[0]!, "mr_host_cpu_percent", 2880, 30_000);

  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...SAAS_FLAGS,
      `${ROOT}provisioner/main.ts`,
      "--server",
      srv.url,
      "console",
      "--listen",
      "127.0.0.1:0",
      "--customer",
      "acme",
      "--json",
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let first = "";
  while (!first.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("console exited before printing its URL");
    first += value;
  }
  const info = JSON.parse(first.split("\n")[0]!) as { url: string; login_url: string };
  try {
    await using b = await launchBrowser();
    const page = b.page;
    await page.goto(info.login_url);
    await page.waitForFunction(
      (n) => document.querySelectorAll("tr[data-node]").length >= n,
      NODES,
      { timeout: 30_000 },
    );

    // times from the page's own navigation start (performance.now() in the page)
    const fmp: number[] = [];
    const all: number[] = [];
    for (let i = 0; i < 6; i++) {
      await page.goto(`${info.url}/fleet?i=${i}`, { waitUntil: "commit" });
      const first = await page.waitForFunction(
        (n) => {
          const total = document.querySelector('[data-count="total"] b')?.textContent;
          return total === String(n) && document.querySelectorAll("tr[data-node]").length >= 50 &&
            performance.now();
        },
        NODES,
        { timeout: 30_000, polling: "raf" },
      );
      const rows = await page.waitForFunction(
        (n) => document.querySelectorAll("tr[data-node]").length >= n && performance.now(),
        NODES,
        { timeout: 30_000, polling: "raf" },
      );
      if (i === 0) continue; // the first load fills the browser's cache
      fmp.push(Number(await first.jsonValue()));
      all.push(Number(await rows.jsonValue()));
    }

    const js = jetstream(nc);
    await page.goto(`${info.url}/events`);
    await page.locator("#tail").waitFor();
    await new Promise((r) => setTimeout(r, 500));
    const tail: number[] = [];
    for (let i = 0; i < 10; i++) {
      const ev = simEvent("acme", nodes[i]!, "agent", "updated", {
        agent: "keeper",
        to: "cd".repeat(32),
      });
      await js.publish(`mr.${nodes[i]!.site}.${nodes[i]!.node}.ev.agent`, JSON.stringify(ev));
      const t = performance.now();
      await page.locator(`#tail details[data-id="${ev.id}"]`).waitFor({ timeout: 10_000 });
      tail.push(performance.now() - t);
    }

    const graph: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await page.goto(`${info.url}/node/acme/${nodes[0]!.site}/${nodes[0]!.node}?range=24h`);
      await page.locator(".chart[data-points] canvas").first().waitFor({ timeout: 10_000 });
      graph.push(performance.now() - t);
    }
    const points = await page.locator(".chart[data-points]").first().getAttribute("data-points");

    const m = await memory(child.pid);
    console.log(
      `console: ${NODES} nodes — fleet page first meaningful paint (counts + first rows) p50 ${
        pct(fmp, 50).toFixed(0)
      } ms, max ${Math.max(...fmp).toFixed(0)} ms (target ≤ 1 s); all ${NODES} rows p50 ${
        pct(all, 50).toFixed(0)
      } ms`,
    );
    console.log(
      `console: live tail, PubAck → row p50 ${pct(tail, 50).toFixed(0)} ms, max ${
        Math.max(...tail).toFixed(0)
      } ms (target ≤ 1 s)`,
    );
    console.log(
      `console: 24 h graph of one node (2,880 samples → ${points} points) p50 ${
        pct(graph, 50).toFixed(0)
      } ms, max ${Math.max(...graph).toFixed(0)} ms (target ≤ 500 ms)`,
    );
    console.log(
      `console: process RSS ${m.rss.toFixed(1)} MB, PSS ${
        m.pss.toFixed(1)
      } MB with ${NODES} nodes (target RSS ≤ 120 MB)`,
    );
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reader.cancel().catch(() => {});
    await nc.close();
  }
}
