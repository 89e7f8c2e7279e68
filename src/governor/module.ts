/**
 * The daemon's `governor` module ({@linkcode GovernorModule}): agents (`mr_governor`) and
 * staged rollouts take fleet-wide slots through it, as this node (`<site>.<node>`): a node
 * holds at most one slot per governor, so two owners on one node take turns. Emits
 * `governor.v1.enter`, `exit`, `timeout` and `evict` (the slot was gone before its lease
 * ended: an operator evicted it) events.
 *
 * @module
 */
import type { DaemonContext, GovernorModule } from "../daemon/types.ts";
import type { Logger } from "../log/logger.ts";
import { createGovernorClient, type GovernorClient } from "./governor.ts";
import { DEFAULT_LEASE_MS } from "./wire.ts";
import type { NatsConnection } from "@nats-io/transport-node";

/** Options of {@linkcode createGovernorModule}. */
export interface GovernorModuleOptions {
  /** Lease of governors this node creates. @default {DEFAULT_LEASE_MS} */
  leaseMs?: number;
}

/** Creates the `governor` daemon module. */
export function createGovernorModule(options: GovernorModuleOptions = {}): GovernorModule {
  let ctx: DaemonContext | null = null;
  let log: Logger | null = null;
  let client: { nc: NatsConnection; gov: GovernorClient } | null = null;
  /** Held slots by `name` then owner. */
  const held = new Map<string, Map<string, { seq: number; since: number; expiresAt: number }>>();
  const counters = { enter: 0, exit: 0, timeout: 0, evict: 0 };

  const gov = async (): Promise<GovernorClient> => {
    if (!ctx) throw new Error("Governor module is not started");
    const nc = await ctx.nats();
    if (!client || client.nc !== nc) {
      const holder = { site: ctx.config.site, node: ctx.config.node };
      client = { nc, gov: createGovernorClient(nc, { holder }) };
    }
    return client.gov;
  };

  const event = (ev: string, data: Record<string, unknown>) => {
    ctx?.outbox.event("governor", ev, data).catch((err) =>
      log?.warn("governor event not spooled", { error: String(err) })
    );
  };

  return {
    name: "governor",
    start(c) {
      ctx = c;
      log = c.logger.child({ component: "governor" });
      return Promise.resolve();
    },
    async stop() {
      // Release what we still hold so others need not wait for the lease.
      const g = ctx?.natsNow() ? await gov().catch(() => null) : null;
      for (const [name, owners] of held) {
        for (const [owner, h] of owners) {
          await g?.release({ name, seq: h.seq }).catch(() => {});
          event("exit", { governor: name, owner, seq: h.seq, reason: "shutdown" });
        }
      }
      held.clear();
      ctx = null;
    },
    async acquire(name, o) {
      const mine = held.get(name)?.get(o.owner);
      if (mine) return { held: true, seq: mine.seq };
      const g = await gov();
      const started = Date.now();
      const lease = await g.acquire(name, {
        owner: o.owner,
        ...(o.capacity !== undefined ? { capacity: o.capacity } : {}),
        leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
        timeoutMs: o.timeoutMs ?? 0,
        ...(ctx ? { signal: ctx.signal } : {}),
      });
      if (!lease) {
        counters.timeout++;
        event("timeout", { governor: name, owner: o.owner, waited_ms: Date.now() - started });
        return { held: false };
      }
      let owners = held.get(name);
      if (!owners) held.set(name, owners = new Map());
      owners.set(o.owner, { seq: lease.seq, since: lease.acquiredAt, expiresAt: lease.expiresAt });
      counters.enter++;
      log?.info("governor slot taken", { governor: name, owner: o.owner, seq: lease.seq });
      event("enter", {
        governor: name,
        owner: o.owner,
        seq: lease.seq,
        waited_ms: Date.now() - started,
      });
      return { held: true, seq: lease.seq };
    },
    async release(name, owner) {
      const h = held.get(name)?.get(owner);
      if (!h) return;
      held.get(name)?.delete(owner);
      const r = await (await gov()).releaseDetailed({ name, seq: h.seq });
      const released = r.released;
      if (!r.released && r.reason === "gone" && Date.now() < h.expiresAt) {
        counters.evict++;
        log?.warn("governor slot was evicted", { governor: name, owner, seq: h.seq });
        event("evict", { governor: name, owner, seq: h.seq, held_ms: Date.now() - h.since });
        return;
      }
      counters.exit++;
      log?.info("governor slot released", { governor: name, owner, seq: h.seq, released });
      event("exit", {
        governor: name,
        owner,
        seq: h.seq,
        held_ms: Date.now() - h.since,
        expired: !released,
      });
    },
    health() {
      const holding: Record<string, string[]> = {};
      for (const [name, owners] of held) {
        if (owners.size) holding[name] = [...owners.keys()];
      }
      return { holding, ...counters };
    },
  };
}
