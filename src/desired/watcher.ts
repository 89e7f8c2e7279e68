/**
 * Watches the node's desired state: KV `MR_DESIRED` keys `site.<site>` and
 * `node.<site>.<node>` (push watches, re-created after reconnects). Each value is a signed
 * envelope; it is applied only when the signer is trusted, the signature verifies, the spec
 * is valid, it names this node's customer and the very key it was read from (`customer`,
 * `target`: a valid `site.*` spec replayed into a `node.*` key, or another customer's, is
 * refused), and its version is greater than the key's floor (the highest version ever
 * accepted there, kept in `<state_dir>/desired/floors.json` across restarts; no
 * rollbacks). Every refusal emits `io.machineroom.desired.v1.rejected` and the last good
 * state stays in force. Deletes are ignored (unsigned): remove agents by publishing a new
 * version without them (`mr-saas unpublish`).
 *
 * The last good envelopes are cached in `<state_dir>/desired/state.json`, so a node that
 * restarts offline runs its agents at once.
 *
 * The effective spec: the site key's agents, overridden agent by agent by the node key's;
 * names in the node key's `removed` list hide the site key's agent of that name. Its
 * `settings` are the site key's, field by field overridden by the node key's.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { join } from "node:path";
import type { DaemonContext } from "../daemon/types.ts";
import { EnvelopeError, openEnvelope } from "./envelope.ts";
import type { AgentSpec, Spec } from "./spec.ts";
import { jittered } from "../util/backoff.ts";
import { type Clock, systemClock, type TimerHandle } from "../util/clock.ts";
import { atomicWrite } from "../util/atomic_write.ts";
import { loadFloors, saveFloors, type VersionFloors } from "./floors.ts";

/** One applied key. */
interface Applied {
  version: number;
  /** The envelope as stored (JSON text). */
  envelope: string;
  agents: AgentSpec[];
  removed: string[];
  settings: Spec["settings"];
  signer: string;
}

/** Where an agent of the effective spec comes from. */
export interface AgentOrigin {
  /** The KV key (`site.<site>` or `node.<site>.<node>`). */
  key: string;
  version: number;
  /** The signer's public key. */
  signer: string;
}

/** The effective desired state handed to the agent manager. */
export interface EffectiveSpec {
  agents: AgentSpec[];
  /** Versions per key, e.g. `{"site.s1": 3, "node.s1.n1": 1}`. */
  versions: Record<string, number>;
  source: "cache" | "kv";
  /** Per agent: the key, version and signer it comes from. */
  origins: Record<string, AgentOrigin>;
  /** Agents the node key removed (`mr-saas unpublish --node`) or a key no longer names. */
  removed: string[];
  /** The spec's `settings` (the node key's fields over the site key's). */
  settings: NonNullable<Spec["settings"]>;
}

/** A running watcher. */
export interface DesiredWatcher {
  stop(): Promise<void>;
  current(): EffectiveSpec | null;
  health(): Record<string, unknown>;
}

/** Options of {@linkcode startDesiredWatcher}. */
export interface DesiredWatcherOptions {
  ctx: DaemonContext;
  onSpec: (spec: EffectiveSpec) => void;
  /**
   * How often each key is also read directly (jittered). A push watch whose consumer lived
   * on a clustered server that died can stall without an error; a read that finds a newer
   * revision than the watch delivered applies it and re-creates the watch. @default {15000}
   */
  resyncMs?: number;
  /** Clock of the retry and resync timers. @default {systemClock} */
  clock?: Clock;
}

const dec = new TextDecoder();

/** Starts watching; the cached state (if any) is delivered before this resolves. */
export async function startDesiredWatcher(o: DesiredWatcherOptions): Promise<DesiredWatcher> {
  const { ctx } = o;
  const { config } = ctx;
  const log = ctx.logger.child({ component: "desired" });
  const keys = [`site.${config.site}`, `node.${config.site}.${config.node}`];
  const dir = join(config.state_dir, "desired");
  const stateFile = join(dir, "state.json");
  const applied: Record<string, Applied> = {};
  let effective: EffectiveSpec | null = null;
  let stopped = false;
  let rejected = 0;
  let lastRejection: Record<string, unknown> | null = null;
  const watches: { stop(): void }[] = [];
  // the highest version ever accepted per key (survives restarts and an invalid cache)
  let floors: VersionFloors = {};
  try {
    floors = await loadFloors(dir);
  } catch (err) {
    log.error("version floors unreadable; rebuilding them from the cache", {
      error: (err as Error).message,
    });
  }
  const floorOf = (key: string) => Math.max(floors[key] ?? 0, applied[key]?.version ?? 0);
  /** Why an opened spec does not belong at `key` of this node, or `null`. */
  const misplaced = (key: string, spec: Spec): [string, string] | null => {
    if (spec.target !== key) {
      return [
        "wrong_target",
        `spec is for ${
          spec.target ? `"${spec.target}"` : "no key (no target)"
        } but was read from "${key}"`,
      ];
    }
    if (spec.customer !== config.customer) {
      return [
        "wrong_customer",
        `spec is for customer ${
          spec.customer ? `"${spec.customer}"` : "(none)"
        }, this node belongs to "${config.customer}"`,
      ];
    }
    return null;
  };
  /** The newest revision seen per key (watch or resync read). */
  const seen: Record<string, number> = {};
  const current: Record<string, { stop(): void } | null> = {};
  const resyncMs = o.resyncMs ?? 15_000;
  const clock = o.clock ?? systemClock;
  let resyncTimer: TimerHandle | undefined;

  const compute = (source: EffectiveSpec["source"]): EffectiveSpec => {
    const byName = new Map<string, AgentSpec>();
    const origins: Record<string, AgentOrigin> = {};
    const removed = new Set<string>();
    let settings: NonNullable<Spec["settings"]> = {};
    for (const k of keys) {
      const a = applied[k];
      if (!a) continue;
      for (const r of a.removed) {
        removed.add(r);
        byName.delete(r);
        delete origins[r];
      }
      for (const spec of a.agents) {
        byName.set(spec.name, spec);
        origins[spec.name] = { key: k, version: a.version, signer: a.signer };
        removed.delete(spec.name);
      }
      settings = { ...settings, ...a.settings };
    }
    const versions: Record<string, number> = {};
    for (const k of keys) if (applied[k]) versions[k] = applied[k]!.version;
    return {
      agents: [...byName.values()],
      versions,
      source,
      origins,
      removed: [...removed],
      settings,
    };
  };
  const appliedOf = (
    opened: { spec: Spec; key: string },
    envelope: string,
  ): Applied => ({
    version: opened.spec.version,
    envelope,
    agents: opened.spec.agents,
    removed: opened.spec.removed ?? [],
    settings: opened.spec.settings,
    signer: opened.key,
  });

  const persist = async () => {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const body = Object.fromEntries(
      Object.entries(applied).map(([k, v]) => [k, { version: v.version, envelope: v.envelope }]),
    );
    await atomicWrite(stateFile, JSON.stringify(body));
  };

  const reject = (
    key: string,
    code: string,
    reason: string,
    extra: Record<string, unknown> = {},
  ) => {
    rejected++;
    lastRejection = { key, code, reason, time: new Date().toISOString(), ...extra };
    log.warn("desired state refused", { key, code, reason });
    ctx.outbox.event("desired", "rejected", { key, code, reason, ...extra }, { priority: 1 })
      .catch(() => {});
  };

  // cached state: verified again (the trust list may have changed)
  try {
    const cached = JSON.parse(await Deno.readTextFile(stateFile)) as Record<
      string,
      { version: number; envelope: string }
    >;
    for (const k of keys) {
      const c = cached[k];
      if (!c) continue;
      try {
        const opened = openEnvelope(c.envelope, config.trust.spec_keys);
        const bad = misplaced(k, opened.spec);
        if (bad) throw new Error(bad[1]);
        if (opened.spec.version < (floors[k] ?? 0)) {
          throw new Error(`version ${opened.spec.version} is below the floor ${floors[k]}`);
        }
        applied[k] = appliedOf(opened, c.envelope);
        floors[k] = Math.max(floors[k] ?? 0, opened.spec.version);
      } catch (err) {
        log.warn("cached desired state no longer valid", { key: k, error: (err as Error).message });
      }
    }
    if (Object.keys(applied).length) {
      effective = compute("cache");
      log.info("running from cached desired state", { versions: effective.versions });
      o.onSpec(effective);
    }
  } catch { /* no cache */ }

  const onValue = async (key: string, value: Uint8Array) => {
    const text = dec.decode(value);
    const prev = applied[key];
    if (prev && prev.envelope === text) return; // the value we already run (watch replay)
    let opened;
    try {
      opened = openEnvelope(text, config.trust.spec_keys);
    } catch (err) {
      const code = err instanceof EnvelopeError ? err.code : "invalid_spec";
      reject(key, code, (err as Error).message);
      return;
    }
    const bad = misplaced(key, opened.spec);
    if (bad) {
      reject(key, bad[0], bad[1], { version: opened.spec.version });
      return;
    }
    const floor = floorOf(key);
    if (opened.spec.version <= floor) {
      reject(
        key,
        "stale_version",
        `version ${opened.spec.version} is not greater than the applied version ${floor}`,
        { version: opened.spec.version, applied_version: floor },
      );
      return;
    }
    // the floor is recorded before the spec takes effect
    floors[key] = opened.spec.version;
    try {
      await saveFloors(dir, floors);
    } catch (err) {
      log.error("cannot record the version floor", { key, error: (err as Error).message });
    }
    applied[key] = appliedOf(opened, text);
    try {
      await persist();
    } catch (err) {
      log.error("cannot cache desired state", { error: (err as Error).message });
    }
    effective = compute("kv");
    log.info("desired state applied", { key, version: opened.spec.version });
    o.onSpec(effective);
  };

  const watchLoop = async (key: string) => {
    let delay = 500;
    while (!stopped) {
      try {
        const nc = await ctx.nats();
        if (stopped) return;
        const kv = await new Kvm(nc).open("MR_DESIRED");
        const iter = await kv.watch({ key });
        watches.push(iter);
        current[key] = iter;
        delay = 500;
        for await (const e of iter) {
          if (stopped) break;
          seen[key] = Math.max(seen[key] ?? 0, e.revision);
          if (e.operation !== "PUT") continue; // deletes are unsigned: ignored
          await onValue(key, e.value);
        }
        current[key] = null;
      } catch (err) {
        if (stopped) return;
        log.warn("desired state watch failed; retrying", { key, error: (err as Error).message });
      }
      if (stopped) return;
      await clock.sleep(jittered(delay));
      delay = Math.min(delay * 2, 30_000);
    }
  };
  for (const k of keys) watchLoop(k);

  /**
   * The key's last entry by the per-key direct get (`$JS.API.DIRECT.GET.KV_MR_DESIRED.<subject>`,
   * the only read form a node's permissions allow for one key), or `null` when it has none.
   */
  const lastEntry = async (nc: NatsConnection, key: string) => {
    const m = await nc.request(
      `$JS.API.DIRECT.GET.KV_MR_DESIRED.$KV.MR_DESIRED.${key}`,
      undefined,
      {
        timeout: 5_000,
      },
    );
    const h = m.headers;
    if (!h || h.hasError) return null; // 404: no entry
    const revision = Number(h.get("Nats-Sequence"));
    if (!Number.isSafeInteger(revision) || revision <= 0) return null;
    const op = h.get("KV-Operation");
    return { revision, put: op === "" || op === "PUT", value: m.data };
  };

  const resync = async () => {
    const nc = ctx.natsNow();
    if (!nc) return;
    for (const key of keys) {
      const e = await lastEntry(nc, key);
      if (stopped || !e || e.revision <= (seen[key] ?? 0)) continue;
      seen[key] = e.revision;
      log.warn("desired state watch missed a change; re-creating it", {
        key,
        revision: e.revision,
      });
      if (e.put) await onValue(key, e.value);
      try {
        current[key]?.stop(); // the loop re-creates the watch
      } catch { /* closed */ }
    }
  };
  const scheduleResync = () => {
    if (stopped) return;
    resyncTimer = clock.setTimeout(() => {
      resync().catch((err) =>
        log.debug("desired state resync failed", { error: (err as Error).message })
      ).finally(scheduleResync);
    }, jittered(resyncMs));
  };
  scheduleResync();

  return {
    stop() {
      stopped = true;
      clock.clearTimeout(resyncTimer);
      for (const w of watches) {
        try {
          w.stop();
        } catch { /* closed */ }
      }
      return Promise.resolve();
    },
    current: () => effective,
    health: () => ({
      versions: effective?.versions ?? {},
      floors: { ...floors },
      source: effective?.source ?? null,
      rejected,
      last_rejection: lastRejection,
    }),
  };
}
