/**
 * The daemon's implementation of {@linkcode HostServices}: what agents reach through
 * `mr_event`, `mr_submit`, `mr_metric`, `mr_transition`, `mr_kv_get`, `mr_governor`,
 * `mr_is_leader` and `mr_facts`. The sandbox checks the grants before calling these.
 *
 * - events → `mr.<site>.<node>.ev.agent`, type `io.machineroom.agent.<agent>.<type>`;
 * - transitions → `io.machineroom.agent.v1.transition` with `{from, to, reason}`;
 * - submissions and metrics → the outbox (spool first);
 * - `mr_kv_get` reads KV bucket `MR_SHARED` (created by the vendor; absent → `null`);
 * - governors and leadership come from the `governor` / `election` daemon modules (without
 *   an election module every node counts as leader).
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import type { DaemonContext, ElectionModule, GovernorModule } from "../daemon/types.ts";
import type { HostServices } from "../host/services.ts";
import { HostCallError } from "../plugins/host/errors.ts";
import { AGENT_MIN_PRIORITY } from "../plugins/host/limits.ts";
import { SpoolFullError } from "../spool/mod.ts";
import { parseDuration } from "../util/duration.ts";

const EVENT_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

/** A spool refusal (full of higher-priority data) is `unavailable` for the agent. */
async function spooled<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof SpoolFullError) {
      throw new HostCallError("unavailable", err.message, { cause: err });
    }
    throw err;
  }
}

/** Creates the services for one daemon. */
export function createDaemonServices(ctx: DaemonContext): HostServices {
  return {
    async event(agent, input) {
      if (typeof input.type !== "string" || !EVENT_NAME.test(input.type)) {
        throw new HostCallError("invalid_input", `event type must match ${EVENT_NAME.source}`);
      }
      const id = await spooled(ctx.outbox.event("agent", input.type, input.data ?? null, {
        agent,
        type: `io.machineroom.agent.${agent}.${input.type}`,
        ...(input.subject ? { subject: input.subject } : {}),
      }));
      return { id };
    },
    async submit(agent, input) {
      let ttlMs: number | undefined;
      if (input.ttl !== undefined) {
        try {
          ttlMs = parseDuration(input.ttl);
        } catch (err) {
          throw new HostCallError("invalid_input", (err as Error).message);
        }
      }
      const id = await spooled(ctx.outbox.submit(input.subject, input.payload, {
        agent,
        // agents never outrank lifecycle events (priority 1): clamped here too
        priority: Math.max(AGENT_MIN_PRIORITY, input.priority ?? AGENT_MIN_PRIORITY),
        ...(ttlMs !== undefined ? { ttlMs } : {}),
      }));
      return { id };
    },
    async metric(agent, input) {
      await spooled(ctx.outbox.metric({ ...input, agent }));
    },
    async transition(agent, input) {
      const id = await spooled(ctx.outbox.event("agent", "transition", {
        from: input.from,
        to: input.to,
        ...(input.reason ? { reason: input.reason } : {}),
      }, { agent }));
      return { id };
    },
    async kvGet(_agent, key) {
      const nc = ctx.natsNow();
      if (!nc) throw new HostCallError("unavailable", "not connected to NATS");
      let kv;
      try {
        kv = await new Kvm(nc).open("MR_SHARED");
        await kv.status();
      } catch {
        return null;
      }
      const e = await kv.get(key);
      if (!e || e.operation !== "PUT") return null;
      let value: unknown;
      try {
        value = e.json();
      } catch {
        value = e.string();
      }
      return { value, revision: e.revision };
    },
    async governor(agent, input) {
      const gov = ctx.module<GovernorModule>("governor");
      if (!gov) throw new HostCallError("unavailable", "governors are not available on this node");
      if (input.action === "release") {
        await gov.release(input.name, `${ctx.config.node}/${agent}`);
        return { held: false };
      }
      return await gov.acquire(input.name, {
        owner: `${ctx.config.node}/${agent}`,
        timeoutMs: input.timeout_ms ?? 0,
      });
    },
    isLeader() {
      const el = ctx.module<ElectionModule>("election");
      return Promise.resolve(el ? el.isLeader() : true);
    },
    facts() {
      return Promise.resolve(ctx.facts());
    },
  };
}
