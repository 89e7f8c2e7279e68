/**
 * Runs `machine-room provision --token F --state-dir D --node N` as a child process.
 *
 * @module
 */
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();

/** Exit code, stdout and stderr of one `provision` run. */
export async function provisionCli(
  tokenFile: string,
  stateDir: string,
  node: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "main.ts"),
      "provision",
      "--token",
      tokenFile,
      "--state-dir",
      stateDir,
      "--node",
      node,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}
