/**
 * The agent manager (daemon module `agents`): wires the agent runtime (`runtime.ts`, one
 * supervisor per agent) to the daemon — the desired-state watcher, facts, election,
 * governors, the rollout outcomes in KV `MR_ROLLOUT`, the local policy and the outbox.
 *
 * - Runs only the agents whose `match` holds against this node's facts (re-evaluated when
 *   facts change) and, for `leader_only`, only while this node leads its site.
 * - Start: module by hash (`src/artifacts`, or `builtin:<name>` compiled in, hash checked),
 *   load with the agent's grants and limits, `mr_init(config)`, then `mr_reconcile` at
 *   once and every `triggers.interval` (default 30 s). `facts` is `{}` without the
 *   `facts` grant.
 * - Hot-swap beside the running version; with `rollout` only while holding a governor
 *   slot, and not once the rollout has halted (`rollout.ts`).
 * - An agent no longer in the desired state is stopped with `mr_shutdown` and reported
 *   `agent.v1.removed`; its cached module stays for a rollback.
 * - The spec's `settings` are applied live (`ctx.applySettings`).
 * - Local policy (`policy.json` in the state dir or `run --policy F`) is enforced over any
 *   spec, re-read without a restart; its hash is in facts as `policy.sha256`.
 * - Commands: `agents` (list) and `invoke` (`{agent, command, args}` → `mr_command`).
 *
 * @module
 */
import { join } from "node:path";
import { CommandError } from "../commands/mod.ts";
import type {
  DaemonContext,
  DaemonModule,
  ElectionModule,
  GovernorModule,
} from "../daemon/types.ts";
import { createArtifactStore } from "../artifacts/mod.ts";
import { type DesiredWatcher, startDesiredWatcher } from "../desired/watcher.ts";
import type { Sandbox } from "../plugins/types.ts";
import { agentLogFor } from "../plugins/host/log.ts";
import type { Logger } from "../log/logger.ts";
import type { NodeConfig } from "../config/schema.ts";
import { createDaemonServices } from "./host_services.ts";
import { AgentCallError } from "./errors.ts";
import { createKvRolloutGate } from "./rollout.ts";
import { type AgentRuntime, type AgentView, createAgentRuntime } from "./runtime.ts";
import { checkPolicy } from "./policy.ts";
import { type PolicyWatch, watchPolicy } from "./policy_watch.ts";
import type { SupervisorClock, SupervisorState } from "./supervisor.ts";
import { systemClock } from "../util/clock.ts";

/** Options of {@linkcode createAgentManager}. */
export interface AgentManagerOptions {
  config: NodeConfig;
  /** Compiled-in agents (`builtin:<name>`). */
  builtinAgents?: Record<string, () => Promise<Uint8Array>>;
  /** `run --policy F`; default `<state_dir>/policy.json` (optional). */
  policyPath?: string;
  /** @default {the system clock} */
  clock?: SupervisorClock;
  /** How often the policy file is re-read. @default {1000} */
  policyIntervalMs?: number;
}

/** The coarse status of the health contract (console, metrics) for a supervisor state. */
export type AgentStatus = "starting" | "running" | "failed" | "rejected" | "stopped";

const STATUS: Record<SupervisorState, AgentStatus> = {
  idle: "starting",
  downloading: "starting",
  loading: "starting",
  running: "running",
  waiting_governor: "running",
  swapping: "running",
  backoff: "failed",
  rejected: "rejected",
  removing: "stopped",
  stopped: "stopped",
};

/** The public view of one agent (`agents` command, `machine-room agents`). */
export function agentView(a: AgentView): Record<string, unknown> {
  const spec = a.spec;
  return {
    name: a.name,
    status: STATUS[a.state],
    state: a.state,
    sha256: spec?.wasm.sha256 ?? null,
    url: spec?.wasm.url ?? null,
    version: a.version ?? a.origin?.version ?? null,
    signer: a.origin?.signer ?? null,
    key: a.origin?.key ?? null,
    grants: spec?.grants ?? null,
    limits: spec?.limits ?? null,
    desired_sha256: a.desired?.wasm.sha256 ?? null,
    held: a.held,
    restarts: a.restarts,
    runs: a.runs,
    last_result: a.last_result,
    last_run: a.last_run,
    last_error: a.last_error,
  };
}

/** Creates the `agents` module. */
export function createAgentManager(opts: AgentManagerOptions): DaemonModule {
  const clock = opts.clock ?? systemClock;
  let ctx: DaemonContext | null = null;
  let sandbox: Sandbox | null = null;
  let sandboxLoading: Promise<Sandbox> | null = null;
  // agent log lines are rate-limited per agent (one AgentLog per sandbox logger)
  let sandboxLogger: Logger | null = null;
  let watcher: DesiredWatcher | null = null;
  let runtime: AgentRuntime | null = null;
  let policy: PolicyWatch | null = null;
  const unsubs: (() => void)[] = [];

  const logDropped = (names: string[]) => {
    const log = sandboxLogger ? agentLogFor({ logger: sandboxLogger }) : null;
    return {
      total: log?.dropped() ?? 0,
      by_agent: Object.fromEntries(names.map((n) => [n, log?.dropped(n) ?? 0])),
    };
  };

  const getSandbox = (): Promise<Sandbox> => {
    if (sandbox) return Promise.resolve(sandbox);
    sandboxLoading ??= (async () => {
      // loaded on first use: a daemon without agents never holds the sandbox in memory
      const { createSandbox } = await import("../plugins/mod.ts");
      const logger = ctx!.logger.child({ component: "sandbox" });
      sandboxLogger = logger;
      const sb = await createSandbox({
        stateDir: join(ctx!.config.state_dir, "agents"),
        services: createDaemonServices(ctx!),
        logger,
      });
      sandbox = sb;
      return sb;
    })();
    return sandboxLoading;
  };

  const list = () => (runtime?.list() ?? []).map(agentView);

  return {
    name: "agents",
    async start(c) {
      ctx = c;
      const log = c.logger.child({ component: "agents" });
      const isLeader = () => c.module<ElectionModule>("election")?.isLeader() ?? true;
      const policyPath = opts.policyPath ?? join(c.config.state_dir, "policy.json");
      policy = await watchPolicy({
        path: policyPath,
        required: opts.policyPath !== undefined,
        clock,
        logger: log,
        intervalMs: opts.policyIntervalMs ?? 1000,
        onChange: () => {
          runtime?.recheck();
          c.refreshFacts().catch(() => {});
        },
        onError: (message) => {
          c.outbox.event("policy", "rejected", { path: policyPath, error: message }, {
            priority: 1,
          }).catch(() => {});
          c.refreshFacts().catch(() => {});
        },
      });
      // facts were collected before the modules started: report the policy's hash now
      if (policy.current()) c.refreshFacts().catch(() => {});
      const store = createArtifactStore({
        dir: join(c.config.state_dir, "cas"),
        ...(c.config.s3 ? { s3: c.config.s3 } : {}),
        logger: c.logger.child({ component: "artifacts" }),
      });
      let version: () => number | null = () => null;
      runtime = createAgentRuntime({
        store,
        sandbox: getSandbox,
        clock,
        logger: log,
        runningFile: join(c.config.state_dir, "agents", "running.json"),
        facts: () => c.facts(),
        isLeader,
        emit: (agent, event, data) => {
          c.outbox.event("agent", event, { agent, ...data }, { agent, priority: 1 })
            .catch(() => {});
        },
        governor: () => c.module<GovernorModule>("governor"),
        rollout: createKvRolloutGate({
          site: c.config.site,
          node: c.config.node,
          nats: () => c.natsNow(),
          now: () => clock.now(),
          version: () => version(),
          logger: log,
        }),
        owner: (agent) => `${c.config.node}/${agent}`,
        ...(opts.builtinAgents ? { builtin: opts.builtinAgents } : {}),
        admit: (spec) => {
          const p = policy?.current();
          if (p) checkPolicy(spec, p.policy);
        },
      });
      const rt = runtime;
      version = () => {
        const v = watcher?.current()?.versions;
        return v ? Math.max(0, ...Object.values(v)) : null;
      };
      unsubs.push(c.onFacts(() => rt.apply(null, "facts")));
      const el = c.module<ElectionModule>("election");
      if (el) unsubs.push(el.onLeadershipChange(() => rt.apply(null, "leadership")));
      // what ran before the restart starts first; the desired state then swaps from it
      await rt.restore();
      watcher = await startDesiredWatcher({
        ctx: c,
        onSpec: (spec) => {
          c.applySettings(spec.settings ?? {});
          rt.apply(spec, "spec");
        },
      });
    },
    async stop() {
      unsubs.splice(0).forEach((u) => u());
      policy?.stop();
      await watcher?.stop();
      await runtime?.stop("daemon stopping");
      await sandbox?.close().catch(() => {});
      sandbox = null;
      sandboxLoading = null;
    },
    facts() {
      const p = policy?.current();
      return {
        policy: {
          sha256: p?.sha256 ?? null,
          path: p?.path ?? null,
          error: policy?.error() ?? null,
        },
      };
    },
    health() {
      const agents = list();
      const failing = agents.filter((a) => a.status === "failed" || a.status === "rejected");
      const p = policy?.current();
      return {
        status: failing.length || policy?.error() ? "degraded" : "healthy",
        running: agents.filter((a) => a.status === "running").length,
        failing: failing.length,
        desired: watcher?.health() ?? null,
        policy: {
          sha256: p?.sha256 ?? null,
          path: p?.path ?? null,
          error: policy?.error() ?? null,
        },
        agents,
        // sandbox host processes: pid, restarts (kills at a deadline/ceiling, crashes), RSS
        sandbox: sandbox?.processes() ?? [],
        log_dropped: logDropped(agents.map((a) => String(a.name))),
      };
    },
    commands() {
      return {
        agents: () => Promise.resolve(list()),
        invoke: async (payload) => {
          const p = payload as { agent?: unknown; command?: unknown; args?: unknown } | null;
          if (!p || typeof p.agent !== "string" || typeof p.command !== "string") {
            throw new CommandError(
              "bad_request",
              'invoke needs {"agent": NAME, "command": NAME, "args"?: JSON}',
            );
          }
          const s = runtime?.supervisor(p.agent);
          if (!s) {
            throw new CommandError("not_found", `agent "${p.agent}" is not running on this node`);
          }
          try {
            return await s.invoke(p.command, p.args ?? null);
          } catch (err) {
            if (err instanceof AgentCallError) throw new CommandError(err.code, err.message);
            throw err;
          }
        },
      };
    },
  };
}
