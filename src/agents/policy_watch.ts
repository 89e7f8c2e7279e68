/**
 * Keeps the local policy current without a restart: the file is re-read every
 * `intervalMs`; a changed, valid file replaces the policy at once, a malformed one is
 * reported (error naming the path and field) and the last good policy stays in force.
 * Deleting the default `<state_dir>/policy.json` removes the policy; an explicit
 * `--policy F` that disappears is an error (last good policy kept).
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import type { SupervisorClock } from "./supervisor.ts";
import type { TimerHandle } from "../util/clock.ts";
import { type LoadedPolicy, parsePolicy, PolicyFileError } from "./policy.ts";

/** A policy larger than this is refused (it is a short list of rules). */
export const MAX_POLICY_BYTES = 1_048_576;

/** Options of {@linkcode watchPolicy}. */
export interface PolicyWatchOptions {
  path: string;
  /** The path was given explicitly (`--policy`): a missing file is an error. */
  required: boolean;
  clock: SupervisorClock;
  logger: Logger;
  /** @default {1000} */
  intervalMs?: number;
  /** A new policy (or `null`: none) is in force. */
  onChange(policy: LoadedPolicy | null): void;
  /** The file could not be used; the last good policy stays. */
  onError?(message: string): void;
}

/** A running policy watch. */
export interface PolicyWatch {
  current(): LoadedPolicy | null;
  /** The last problem with the file, or `null` when the file in force is the file on disk. */
  error(): string | null;
  /** Re-reads the file now. */
  check(): Promise<void>;
  stop(): void;
}

/** Loads the policy once (throws {@linkcode PolicyFileError} when unusable) and keeps watching. */
export async function watchPolicy(o: PolicyWatchOptions): Promise<PolicyWatch> {
  let current: LoadedPolicy | null = null;
  let lastText: string | null = null;
  let error: string | null = null;
  let timer: TimerHandle | undefined;
  let stopped = false;

  const read = async (): Promise<string | null> => {
    try {
      const st = await Deno.stat(o.path);
      if (st.size > MAX_POLICY_BYTES) {
        throw new PolicyFileError(
          `${o.path}: policy file is ${st.size} bytes, more than ${MAX_POLICY_BYTES}`,
        );
      }
      return await Deno.readTextFile(o.path);
    } catch (err) {
      if (err instanceof PolicyFileError) throw err;
      if (err instanceof Deno.errors.NotFound) return null;
      throw new PolicyFileError(`${o.path}: ${(err as Error).message}`, { cause: err });
    }
  };

  const check = async (initial = false) => {
    let text: string | null;
    try {
      text = await read();
      if (text === lastText && !initial) return;
      if (text === null) {
        if (o.required) throw new PolicyFileError(`${o.path}: policy file not found`);
        lastText = null;
        error = null;
        if (current) {
          current = null;
          o.logger.info("local policy removed", { path: o.path });
          o.onChange(null);
        }
        return;
      }
      const loaded = parsePolicy(text, o.path);
      lastText = text;
      error = null;
      if (loaded.sha256 !== current?.sha256) {
        current = loaded;
        o.logger.info("local policy in force", { path: o.path, sha256: loaded.sha256 });
        if (!initial) o.onChange(loaded);
      }
    } catch (err) {
      if (initial) throw err;
      const msg = (err as Error).message;
      if (msg !== error) {
        error = msg;
        o.logger.error("local policy not applied; the last good policy stays", { error: msg });
        o.onError?.(msg);
      }
    }
  };

  await check(true);
  const loop = () => {
    timer = o.clock.setTimeout(async () => {
      await check();
      if (!stopped) loop();
    }, o.intervalMs ?? 1000);
  };
  loop();
  return {
    current: () => current,
    error: () => error,
    check: () => check(),
    stop() {
      stopped = true;
      o.clock.clearTimeout(timer);
    },
  };
}
