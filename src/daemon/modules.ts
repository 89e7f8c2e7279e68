/**
 * The daemon modules `machine-room run` starts, in order. Each concern adds its factory
 * here (one line each, in its marked slot).
 *
 * @module
 */
import type { NodeConfig } from "../config/schema.ts";
import type { DaemonModule } from "./types.ts";
import { createElectionModule } from "../election/mod.ts";
import { createGovernorModule } from "../governor/mod.ts";
import { createMetricsModule } from "../metrics/exporters.ts";
import { createAgentManager } from "../agents/manager.ts";
import { createRenewalModule } from "../provision/renewal.ts";

/** Options that reach module factories. */
export interface ModuleFactoryOptions {
  config: NodeConfig;
  /** Compiled-in agents (`builtin:<name>` sources), from `buildCli({agents})`. */
  builtinAgents?: Record<string, () => Promise<Uint8Array>>;
  /** `run --policy F`: the host owner's local policy file (default `<state_dir>/policy.json`). */
  policyPath?: string;
  /** The path of the config file (renewal rewrites it), if any. */
  configPath?: string;
}

/** A factory of one module. */
export type ModuleFactory = (o: ModuleFactoryOptions) => DaemonModule | null;

/** The module factories, in start order. */
export const MODULE_FACTORIES: ModuleFactory[] = [
  (o) => createMetricsModule(o.config),
  // [slot: election] (issue 7)
  (o) => createElectionModule(o.config),
  () => createGovernorModule(),
  // [slot: agents] (issue 4)
  (o) =>
    createAgentManager({
      config: o.config,
      ...(o.builtinAgents ? { builtinAgents: o.builtinAgents } : {}),
      ...(o.policyPath ? { policyPath: o.policyPath } : {}),
    }),
  // [slot: renewal] (issue 5)
  (o) => createRenewalModule(o.config),
];

/** Instantiates the default modules for a config. */
export function defaultModules(o: ModuleFactoryOptions): DaemonModule[] {
  return MODULE_FACTORIES.map((f) => f(o)).filter((m): m is DaemonModule => m !== null);
}
