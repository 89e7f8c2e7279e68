/**
 * The console's browser bundle: `ui/main.ts` (Preact + htm + preact-router + uPlot) bundled
 * by `deno bundle` into `dist/app.js`. `deno task build:console` builds it; the console
 * rebuilds it at start when the sources changed (their sha256 is kept in `dist/app.hash`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

const UI = fromFileUrl(new URL("./ui/", import.meta.url));
const DIST = fromFileUrl(new URL("./dist/", import.meta.url));

async function sourceHash(): Promise<string> {
  const h = createHash("sha256");
  const files: string[] = [];
  for await (const e of Deno.readDir(UI)) if (e.isFile) files.push(e.name);
  for (const f of files.sort()) {
    h.update(f);
    h.update(await Deno.readFile(join(UI, f)));
  }
  return h.digest("hex");
}

/** Builds `dist/app.js` if missing or stale; returns its bytes. */
export async function ensureBundle(o: { force?: boolean } = {}): Promise<Uint8Array> {
  const hash = await sourceHash();
  const out = join(DIST, "app.js");
  if (!o.force) {
    try {
      if ((await Deno.readTextFile(join(DIST, "app.hash"))).trim() === hash) {
        return await Deno.readFile(out);
      }
    } catch { /* not built yet */ }
  }
  await Deno.mkdir(DIST, { recursive: true });
  const tmp = `${out}.${crypto.randomUUID()}.tmp`;
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--minify",
      "-o",
      tmp,
      join(UI, "main.ts"),
    ],
    cwd: dirname(dirname(UI)),
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (!r.success) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`cannot bundle the console UI: ${new TextDecoder().decode(r.stderr).trim()}`);
  }
  await Deno.rename(tmp, out);
  await Deno.writeTextFile(join(DIST, "app.hash"), hash + "\n");
  return await Deno.readFile(out);
}

if (import.meta.main) {
  const bytes = await ensureBundle({ force: true });
  console.log(`console bundle: ${join(DIST, "app.js")} (${(bytes.length / 1024).toFixed(1)} KiB)`);
}
