/**
 * Test/bench helper: simulated nodes that write what real nodes write (facts to
 * `MR_NODES`, lifecycle `alive` CloudEvents to `MR_EVENTS`, host metrics to `MR_METRICS`)
 * straight into JetStream, for console tests and the 1,000-node bench.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { ulid } from "../../src/util/ulid.ts";

/** A simulated node's identity. */
export interface SimNode {
  site: string;
  node: string;
}

/** The CloudEvent a node sends. */
export function simEvent(
  customer: string,
  n: SimNode,
  category: string,
  name: string,
  data: Record<string, unknown>,
  time = new Date(),
): Record<string, unknown> {
  return {
    specversion: "1.0",
    id: ulid(),
    source: `mr://${customer}/${n.site}/${n.node}`,
    type: `io.machineroom.${category}.v1.${name}`,
    time: time.toISOString(),
    datacontenttype: "application/json",
    mrsite: n.site,
    mrnode: n.node,
    data,
  };
}

/** Facts like a Linux node's. */
export function simFacts(customer: string, n: SimNode, i = 0): Record<string, unknown> {
  return {
    identity: {
      customer,
      site: n.site,
      node: n.node,
      hostname: `${n.node}.example`,
      machine_id: null,
    },
    agent: {
      name: "machine-room",
      version: "0.1.0",
      deno: "2.9.6",
      pid: 1000 + i,
      started_at: new Date().toISOString(),
    },
    os: {
      platform: "linux",
      distro: "Debian GNU/Linux",
      release: "12",
      codename: "bookworm",
      kernel: "6.1.0",
      arch: "x64",
      hostname: `${n.node}.example`,
    },
    cpu: {
      manufacturer: "AMD",
      brand: "EPYC",
      cores: 2,
      physical_cores: 1,
      speed_ghz: 2.4,
      load: { "1m": 0.1, "5m": 0.1, "15m": 0.1 },
    },
    memory: {
      total: 4e9,
      free: 2e9,
      used: 2e9,
      available: 2e9,
      used_percent: 50,
      swap_total: 0,
      swap_used: 0,
    },
  };
}

/** Publishes facts + one alive event per node (at most `concurrency` in flight). */
export async function simulateNodes(
  nc: NatsConnection,
  customer: string,
  nodes: SimNode[],
  o: { status?: string; agents?: Record<string, unknown>[]; concurrency?: number } = {},
): Promise<void> {
  const js = jetstream(nc);
  const c = o.concurrency ?? 256;
  for (let i = 0; i < nodes.length; i += c) {
    await Promise.all(
      nodes.slice(i, i + c).flatMap((n, j) => [
        js.publish(`mr.${n.site}.${n.node}.facts`, JSON.stringify(simFacts(customer, n, i + j))),
        js.publish(
          `mr.${n.site}.${n.node}.ev.lifecycle`,
          JSON.stringify(simEvent(customer, n, "lifecycle", "alive", {
            status: o.status ?? "healthy",
            uptime_s: 100,
            spool_depth: 0,
            rss: 50e6,
            dead_letters: 0,
            agents: o.agents ??
              [{ name: "keeper", status: "running", sha256: "ab".repeat(32), version: 1 }],
          })),
        ),
      ]),
    );
  }
}

/** Publishes `count` samples of `name` for one node, `stepMs` apart, ending now. */
export async function simulateMetrics(
  nc: NatsConnection,
  n: SimNode,
  name: string,
  count: number,
  stepMs: number,
): Promise<void> {
  const js = jetstream(nc);
  const end = Date.now();
  const batch: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const t = end - (count - 1 - i) * stepMs;
    batch.push(js.publish(
      `mr.${n.site}.${n.node}.metrics`,
      JSON.stringify({
        time: new Date(t).toISOString(),
        site: n.site,
        node: n.node,
        name,
        value: 50 + 40 * Math.sin(i / 60),
        kind: "gauge",
      }),
    ));
    if (batch.length >= 512) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
}
