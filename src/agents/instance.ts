/**
 * One agent instance's life in the sandbox, as the supervisor drives it: `mr_init` with the
 * spec's config, the `mr_reconcile` input of ABI v1, and `mr_shutdown` before closing.
 *
 * @module
 */
import type { AgentSpec } from "../desired/spec.ts";
import type { Logger } from "../log/logger.ts";
import type { AgentPlugin } from "../plugins/types.ts";
import { errorInfo } from "./errors.ts";

const enc = new TextEncoder();

/** Runs `mr_init(config)`; on failure closes the plugin and rethrows tagged `phase: "init"`. */
export async function initInstance(plugin: AgentPlugin, spec: AgentSpec): Promise<void> {
  try {
    if (plugin.has("mr_init")) {
      await plugin.call("mr_init", enc.encode(JSON.stringify(spec.config ?? null)));
    }
  } catch (err) {
    await plugin.close().catch(() => {});
    throw Object.assign(err as object, { phase: "init" });
  }
}

/** `mr_shutdown` (a failure is logged), then close. Never throws. */
export async function closeInstance(
  plugin: AgentPlugin,
  logger: Logger,
  agent: string,
): Promise<void> {
  if (plugin.has("mr_shutdown")) {
    await plugin.call("mr_shutdown").catch((err) =>
      logger.warn("mr_shutdown failed", { agent, error: errorInfo(err).message })
    );
  }
  await plugin.close().catch(() => {});
}

/** The `mr_reconcile` input (ABI.md): `facts` is `{}` without the `facts` grant. */
export function reconcileInput(
  spec: AgentSpec,
  facts: () => Record<string, unknown>,
  s: { lastResult: unknown; runs: number; lastRun: string | null; kind: string; now: number },
): Record<string, unknown> {
  return {
    desired: spec.config ?? null,
    facts: spec.grants.facts ? facts() : {},
    state: {
      last_status: (s.lastResult as { status?: unknown } | null)?.status ?? null,
      runs: s.runs,
      last_run: s.lastRun,
    },
    trigger: { kind: s.kind, at: new Date(s.now).toISOString() },
  };
}
