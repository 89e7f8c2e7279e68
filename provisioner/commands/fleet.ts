/**
 * mr-saas commands: `rollout status --agent A [--site S]` (issue 7): who holds the agent's
 * rollout governor right now, which version each node last reported
 * (`io.machineroom.agent.v1.updated` events in `MR_EVENTS`) and, with `--site`, each
 * node's rollout outcome (KV `MR_ROLLOUT`) and whether the rollout halted.
 *
 * @module
 */
import type { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { saasConnect } from "../connect.ts";
import { UsageError } from "../../src/cli/errors.ts";
import { isId } from "../../src/util/ids.ts";
import { parseDuration } from "../../src/util/duration.ts";
import { isConsumerNotFound, isStreamNotFound } from "../../src/nats/errors.ts";
import { createGovernorClient, type GovernorHolder } from "../../src/governor/mod.ts";
import { type RolloutOutcomes, rolloutOutcomes } from "../rollout_outcomes.ts";
import type { Rollout } from "../../src/desired/spec.ts";

/** The rollout of one agent across the fleet. */
export interface RolloutStatus {
  agent: string;
  governor: string | null;
  capacity: number | null;
  holders: GovernorHolder[];
  /** Desired sha256 per MR_DESIRED key naming the agent. */
  desired: Record<string, { version: number; sha256: string | null }>;
  /** Last `updated` event per `<site>.<node>`. */
  nodes: Record<string, { sha256: string | null; version: unknown; time: string | null }>;
  /** With a site: every node's outcome for the agent and whether the rollout halted. */
  outcomes?: RolloutOutcomes;
}

function decodeSpec(raw: Uint8Array): Record<string, unknown> | null {
  try {
    const env = JSON.parse(new TextDecoder().decode(raw)) as { spec?: string };
    if (typeof env.spec !== "string") return null;
    const bin = atob(env.spec);
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

/**
 * Collects the rollout status of `agent`. The governor comes from `options.governor` or the
 * agent's `rollout.governor` in the desired specs.
 */
export async function rolloutStatus(
  nc: NatsConnection,
  agent: string,
  options: { governor?: string; timeoutMs?: number; site?: string } = {},
): Promise<RolloutStatus> {
  const status: RolloutStatus = {
    agent,
    governor: options.governor ?? null,
    capacity: null,
    holders: [],
    desired: {},
    nodes: {},
  };
  let siteAgent: Record<string, unknown> | null = null;
  // Desired state: which keys name the agent, its hash and rollout governor.
  try {
    const kv = await new Kvm(nc).open("MR_DESIRED");
    for await (const key of await kv.keys()) {
      const e = await kv.get(key);
      if (!e || e.operation !== "PUT") continue;
      const spec = decodeSpec(e.value);
      const agents = (spec?.agents ?? []) as Record<string, unknown>[];
      const a = agents.find((x) => x.name === agent);
      if (!a) continue;
      status.desired[key] = {
        version: Number(spec?.version ?? 0),
        sha256: ((a.wasm as { sha256?: string } | undefined)?.sha256) ?? null,
      };
      const r = a.rollout as { governor?: string; capacity?: number } | undefined;
      if (r?.governor && !status.governor) status.governor = r.governor;
      if (options.site && key === `site.${options.site}`) siteAgent = a;
    }
  } catch { /* no desired state yet */ }

  if (options.site) {
    status.outcomes = await rolloutOutcomes(nc, options.site, agent, {
      sha256: (siteAgent?.wasm as { sha256?: string } | undefined)?.sha256 ?? null,
      rollout: (siteAgent?.rollout ?? null) as Partial<Rollout> | null,
    });
  }
  if (status.governor) {
    const gov = createGovernorClient(nc);
    const info = await gov.info(status.governor);
    status.capacity = info?.capacity ?? null;
    status.holders = await gov.holders(status.governor);
  }

  // Per-node versions from the agent events.
  const js = jetstream(nc);
  try {
    const c = await js.consumers.get("MR_EVENTS", { filter_subjects: "mr.*.*.ev.agent" });
    let pending = (await c.info(true)).num_pending;
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    while (pending > 0 && Date.now() < deadline) {
      const batch = await c.fetch({ max_messages: Math.min(pending, 1000), expires: 2_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        pending = m.info.pending;
        let ev: Record<string, unknown>;
        try {
          ev = m.json();
        } catch {
          continue;
        }
        if (ev.type !== "io.machineroom.agent.v1.updated") continue;
        const data = (ev.data ?? {}) as Record<string, unknown>;
        if (ev.mragent !== agent && data.name !== agent && data.agent !== agent) continue;
        const node = `${ev.mrsite}.${ev.mrnode}`;
        status.nodes[node] = {
          sha256: (data.sha256 ?? data.to ?? data.hash ?? null) as string | null,
          version: data.version ?? null,
          time: (ev.time as string | undefined) ?? null,
        };
      }
      if (got === 0) break;
    }
  } catch (err) {
    if (!isStreamNotFound(err) && !isConsumerNotFound(err)) throw err;
  }
  return status;
}

/** Registers this concern's commands on `program`. */
export function registerFleetCommands(program: Command): void {
  const governor = program.command("governor").description("fleet-wide semaphores");
  governor.command("add")
    .description("create a governor (or change its capacity/lease)")
    .argument("<name>", "governor name")
    .requiredOption("--capacity <n>", "slots")
    .option("--lease <duration>", "slot expiry when a holder dies", "10m")
    .option("--replicas <n>", "copies of the governor's stream on a clustered server")
    .action(async (
      name: string,
      o: { capacity: string; lease: string; replicas?: string },
      cmd: Command,
    ) => {
      const replicas = o.replicas === undefined ? undefined : Number(o.replicas);
      if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 1 || replicas > 5)) {
        throw new UsageError(`--replicas must be an integer 1..5, got "${o.replicas}"`);
      }
      const capacity = Number(o.capacity);
      if (!Number.isInteger(capacity) || capacity < 1) {
        throw new UsageError(`--capacity must be an integer ≥ 1, got "${o.capacity}"`);
      }
      let leaseMs: number;
      try {
        leaseMs = parseDuration(o.lease);
      } catch (err) {
        throw new UsageError(`--lease: ${(err as Error).message}`);
      }
      await using nc = await saasConnect(cmd);
      const r = await createGovernorClient(nc).ensure(
        name,
        capacity,
        leaseMs,
        replicas === undefined ? {} : { replicas },
      );
      console.log(`governor ${name}: ${r} (capacity ${capacity}, lease ${o.lease})`);
    });
  governor.command("evict")
    .description("free a holder's slot now (the holder's node reports governor.v1.evict)")
    .argument("<name>", "governor name")
    .argument("<site.node>", "the holder")
    .option("--json", "print JSON")
    .action(async (name: string, holder: string, o: { json?: boolean }, cmd: Command) => {
      const [site, node, ...rest] = holder.split(".");
      if (!site || !node || rest.length || !isId(site) || !isId(node)) {
        throw new UsageError(`holder must be <site>.<node>, got "${holder}"`);
      }
      await using nc = await saasConnect(cmd);
      const gov = createGovernorClient(nc);
      const h = (await gov.holders(name)).find((x) => x.holder === `${site}.${node}`);
      const evicted = h ? await gov.release({ name, seq: h.seq }) : false;
      if (o.json) {
        console.log(JSON.stringify({ governor: name, holder, evicted, seq: h?.seq ?? null }));
      } else {console.log(
          evicted
            ? `evicted ${holder} from ${name} (seq ${h!.seq})`
            : `${holder} holds no slot of ${name}`,
        );}
      if (!evicted) Deno.exitCode = 1;
    });
  governor.command("view")
    .description("capacity and current holders of a governor")
    .argument("<name>", "governor name")
    .option("--json", "print JSON")
    .action(async (name: string, o: { json?: boolean }, cmd: Command) => {
      await using nc = await saasConnect(cmd);
      const gov = createGovernorClient(nc);
      const info = await gov.info(name);
      if (!info) throw new UsageError(`Governor "${name}" does not exist`);
      const holders = await gov.holders(name);
      if (o.json) return console.log(JSON.stringify({ name, ...info, holders }));
      console.log(
        `governor ${name}: ${holders.length}/${info.capacity} held, lease ${info.leaseMs} ms`,
      );
      for (const h of holders) {
        console.log(
          `  ${h.holder} ${h.owner} (seq ${h.seq}, since ${new Date(h.since).toISOString()})`,
        );
      }
    });

  const rollout = program.command("rollout").description("staged rollouts");
  rollout.command("status")
    .description(
      "governor holders, per-node versions and outcomes of an agent's rollout; halted or not",
    )
    .argument("[agent]", "agent name (or --agent)")
    .option("--agent <name>", "agent name")
    .option("--site <site>", "site: per-node outcomes (KV MR_ROLLOUT) and whether it halted")
    .option("--governor <name>", "governor (default: the agent's rollout.governor in its spec)")
    .option("--json", "print JSON")
    .action(async (
      positional: string | undefined,
      o: { agent?: string; site?: string; governor?: string; json?: boolean },
      cmd: Command,
    ) => {
      const agent = o.agent ?? positional;
      if (!agent) throw new UsageError("give the agent: --agent NAME");
      if (!isId(agent)) throw new UsageError(`Invalid agent name: "${agent}"`);
      if (o.site !== undefined && !isId(o.site)) {
        throw new UsageError(`Invalid site: "${o.site}"`);
      }
      await using nc = await saasConnect(cmd);
      const st = await rolloutStatus(nc, agent, {
        ...(o.governor ? { governor: o.governor } : {}),
        ...(o.site ? { site: o.site } : {}),
      });
      if (o.json) {
        console.log(JSON.stringify(st));
        return;
      }
      const target = new Set(Object.values(st.desired).map((d) => d.sha256).filter(Boolean));
      console.log(`agent ${agent}`);
      console.log(
        st.governor
          ? `governor ${st.governor}: ${st.holders.length}/${st.capacity ?? "?"} slots held`
          : "governor: none (no rollout.governor in the spec; use --governor)",
      );
      for (const h of st.holders) {
        console.log(`  holder ${h.owner} (seq ${h.seq}, since ${new Date(h.since).toISOString()})`);
      }
      const nodes = Object.entries(st.nodes).sort(([a], [b]) => a.localeCompare(b));
      const done = nodes.filter(([, n]) => n.sha256 && target.has(n.sha256)).length;
      console.log(`nodes updated to the desired hash: ${done}/${nodes.length}`);
      for (const [node, n] of nodes) {
        const mark = n.sha256 && target.has(n.sha256) ? "✓" : " ";
        console.log(`  ${mark} ${node} ${n.sha256?.slice(0, 12) ?? "?"} ${n.time ?? ""}`);
      }
      const oc = st.outcomes;
      if (oc) {
        console.log(
          `site ${oc.site}: ${oc.halted ? "HALTED" : "not halted"} (${oc.failed} failed` +
            `${oc.limit !== null ? ` of max ${oc.limit}` : ""} on ${
              oc.sha256?.slice(0, 12) ?? "?"
            })`,
        );
        for (const [node, r] of Object.entries(oc.nodes)) {
          console.log(
            `  ${node.padEnd(16)} ${r.state.padEnd(8)} ${r.sha256.slice(0, 12)}` +
              `${r.code ? ` ${r.code}` : ""} ${r.ts}`,
          );
        }
      }
    });
}
