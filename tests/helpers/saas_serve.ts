/**
 * `mr-saas serve` and other `mr-saas` commands as child processes, for tests of the real
 * CLI (several processes sharing one vendor home).
 *
 * @module
 */
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();

/** Runs `mr-saas --home H --server S …args`. */
export async function saasCli(
  home: string,
  server: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "provisioner/main.ts"),
      "--home",
      home,
      "--server",
      server,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

/** A running `mr-saas serve` child; dispose to stop it. */
export interface SaasServe extends AsyncDisposable {
  url: string;
  stderr(): string;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number>;
}

/** Starts `mr-saas serve --listen 127.0.0.1:0 …extra` and waits for its port. */
export async function saasServe(
  home: string,
  server: string,
  extra: string[] = [],
): Promise<SaasServe> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "provisioner/main.ts"),
      "--home",
      home,
      "--server",
      server,
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--no-mediator",
      ...extra,
    ],
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let err = "";
  const reader = child.stderr.getReader();
  const port = await (async () => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const { done, value } = await reader.read();
      if (done) break;
      err += dec.decode(value);
      const m = /"provisioner listening","port":(\d+)/.exec(err);
      if (m) return Number(m[1]);
    }
    child.kill("SIGKILL");
    await child.status;
    throw new Error(`mr-saas serve did not start: ${err}`);
  })();
  // keep draining stderr so the child never blocks on a full pipe
  const drain = (async () => {
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) break;
      err += dec.decode(value);
    }
  })();
  let stopped: Promise<number> | null = null;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const { code } = await child.status;
      await drain;
      return code;
    })();
  return {
    url: `http://127.0.0.1:${port}`,
    stderr: () => err,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
