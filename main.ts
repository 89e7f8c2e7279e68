/**
 * Entry of the `machine-room` edge binary. The example agents are compiled in (built by
 * `deno task build:examples`, embedded by `deno task compile` via `--include`).
 *
 * @module
 */
// the CLI module, not src/mod.ts: the full public API would load the sandbox eagerly
import { buildCli, runCli } from "./src/cli/mod.ts";

const examples = ["http-probe", "service-keeper", "threshold-check", "exporter-scrape"];
const agents = Object.fromEntries(
  examples.map((n) => [n, new URL(`./wasm-examples/dist/${n}.wasm`, import.meta.url)]),
);

if (import.meta.main) {
  Deno.exit(await runCli(buildCli({ agents })));
}
