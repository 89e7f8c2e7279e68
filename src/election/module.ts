/**
 * The daemon's `election` module ({@linkcode ElectionModule}): site leader election for
 * `role: "auto"`, or a fixed answer for the static roles `leader` / `follower` from
 * provisioning. Emits `election.v1.won` / `election.v1.lost` and adds an `election`
 * section (role, leader, TTL) to the health document.
 *
 * @module
 */
import type { DaemonContext, ElectionModule } from "../daemon/types.ts";
import type { NodeConfig } from "../config/schema.ts";
import { parseDuration } from "../util/duration.ts";
import { createElection, type Election } from "./election.ts";

/** Options of {@linkcode createElectionModule}. */
export interface ElectionModuleOptions {
  /** Overrides `config.election.ttl` (ms), the fallback when the bucket TTL is unreadable. */
  ttlMs?: number;
}

/** Creates the `election` module for a node config. */
export function createElectionModule(
  config: Pick<NodeConfig, "site" | "node" | "role" | "election">,
  options: ElectionModuleOptions = {},
): ElectionModule {
  const mode = config.role;
  const ttlMs = options.ttlMs ?? parseDuration(config.election?.ttl ?? "60s");
  const listeners = new Set<(leader: boolean) => void>();
  let election: Election | null = null;
  let ctx: DaemonContext | null = null;

  return {
    name: "election",
    start(c) {
      ctx = c;
      if (mode !== "auto") {
        c.logger.info("static site role", { component: "election", role: mode });
        return Promise.resolve();
      }
      election = createElection({
        site: config.site,
        node: config.node,
        connection: () => c.natsNow(),
        ttlMs,
        logger: c.logger,
      });
      election.onChange((ch) => {
        const data = {
          site: config.site,
          node: config.node,
          revision: ch.revision,
          ttl_ms: election?.status().ttl_ms ?? ttlMs,
          ...(ch.reason ? { reason: ch.reason } : {}),
        };
        c.outbox.event("election", ch.leader ? "won" : "lost", data, { priority: 1 }).catch(
          (err) => c.logger.warn("election event not spooled", { error: String(err) }),
        );
        for (const l of listeners) {
          try {
            l(ch.leader);
          } catch (err) {
            c.logger.error("leadership listener failed", { error: String(err) });
          }
        }
      });
      election.start();
      return Promise.resolve();
    },
    async stop() {
      await election?.stop({ release: true });
      election = null;
      ctx = null;
    },
    isLeader() {
      if (mode === "leader") return true;
      if (mode === "follower") return false;
      return election?.isLeader() ?? false;
    },
    onLeadershipChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    health() {
      if (mode !== "auto") {
        return { mode: "static", role: mode, leader: mode === "leader" ? config.node : null };
      }
      const st = election?.status();
      return { mode: "auto", ...(st ?? { role: "follower", leader: null }), running: !!ctx };
    },
  };
}
