/**
 * {@linkcode HostServices} for `plugin run`: network-plane host functions print one JSON
 * line each (`{"kind":"event","agent",…}`) and return plausible results.
 *
 * @module
 */
import type { HostServices } from "../host/services.ts";
import { ulid } from "../util/ulid.ts";

/** Options for {@linkcode createPrintingServices}. */
export interface PrintingServicesOptions {
  /** Facts document `mr_facts` returns. @default {{}} */
  facts?: Record<string, unknown>;
  /** `mr_is_leader` answer. @default {true} */
  leader?: boolean;
}

/**
 * Host services that print what an agent would send to the SaaS.
 *
 * @example
 * ```ts
 * const services = createPrintingServices((line) => console.log(line));
 * ```
 */
export function createPrintingServices(
  write: (line: string) => void,
  options: PrintingServicesOptions = {},
): HostServices {
  const print = (kind: string, agent: string, fields: Record<string, unknown>) =>
    write(JSON.stringify({ kind, agent, ...fields }));
  return {
    event(agent, input) {
      const id = ulid();
      print("event", agent, {
        id,
        type: input.type,
        data: input.data ?? null,
        ...(input.subject ? { subject: input.subject } : {}),
      });
      return Promise.resolve({ id });
    },
    submit(agent, input) {
      const id = ulid();
      print("submit", agent, { id, ...input });
      return Promise.resolve({ id });
    },
    metric(agent, input) {
      print("metric", agent, { ...input });
      return Promise.resolve();
    },
    transition(agent, input) {
      const id = ulid();
      print("transition", agent, { id, ...input });
      return Promise.resolve({ id });
    },
    kvGet(agent, key) {
      print("kv_get", agent, { key });
      return Promise.resolve(null);
    },
    governor(agent, input) {
      const held = input.action === "acquire";
      print("governor", agent, { ...input, held });
      return Promise.resolve(held ? { held, seq: 1 } : { held });
    },
    isLeader(agent) {
      print("is_leader", agent, { leader: options.leader ?? true });
      return Promise.resolve(options.leader ?? true);
    },
    facts(agent) {
      print("facts", agent, {});
      return Promise.resolve(options.facts ?? {});
    },
  };
}
