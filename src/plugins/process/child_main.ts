/**
 * Entry of the sandbox host process (`deno run child_main.ts`, or the compiled binary's
 * hidden `__sandbox-host` subcommand). It drops every permission, then serves frames from
 * the daemon on stdin (load, unload, call) and answers on stdout; host functions go to the
 * daemon over the same pipes. The daemon kills and restarts it when a call does not stop.
 *
 * @module
 */
import { Stop } from "./classify.ts";
import { readFrame, writeFrame } from "./child_io.ts";
import { callPlugin, loadPlugin, unloadPlugin } from "./plugin_runtime.ts";

const PERMISSIONS = ["read", "write", "net", "env", "run", "ffi", "sys", "import"] as const;

/** Drops all permissions (a compiled binary starts with the ones it was compiled with). */
function dropPermissions(): void {
  for (const name of PERMISSIONS) {
    try {
      Deno.permissions.revokeSync({ name } as Deno.PermissionDescriptor);
    } catch {
      // unknown descriptor on this Deno version: nothing to revoke
    }
  }
}

/** stdout carries frames: any stray console output goes to stderr instead. */
function redirectConsole(): void {
  const enc = new TextEncoder();
  const toStderr = (...args: unknown[]) => {
    try {
      Deno.stderr.writeSync(enc.encode(args.map(String).join(" ") + "\n"));
    } catch {
      // stderr closed
    }
  };
  for (const k of ["log", "info", "debug", "warn", "error", "trace"] as const) {
    (console as unknown as Record<string, unknown>)[k] = toStderr;
  }
}

/** Serves the daemon until it closes stdin. */
export async function serveSandboxHost(): Promise<void> {
  redirectConsole();
  dropPermissions();
  writeFrame({ t: "ready", pid: Deno.pid });
  for (;;) {
    const f = readFrame();
    if (!f) return;
    const m = f.header;
    switch (m.t) {
      case "load":
        try {
          const exports = await loadPlugin(m, f.body);
          writeFrame({ t: "done", id: m.id, exports });
        } catch (err) {
          const failure = err instanceof Stop
            ? err.failure
            : { code: "invalid_module" as const, message: `Module cannot be loaded: ${err}` };
          writeFrame({ t: "done", id: m.id, failure });
        }
        break;
      case "unload":
        await unloadPlugin(m.key).catch(() => {});
        writeFrame({ t: "done", id: m.id });
        break;
      case "call": {
        const r = await callPlugin(m.key, m.fn, m.limits, f.body.length ? f.body : null);
        if ("failure" in r) writeFrame({ t: "done", id: m.id, failure: r.failure });
        else writeFrame({ t: "done", id: m.id }, r.output);
        break;
      }
      case "reply":
        break; // a reply for a call that already ended
    }
  }
}

if (import.meta.main) {
  await serveSandboxHost();
  Deno.exit(0);
}
