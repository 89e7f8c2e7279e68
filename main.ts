/**
 * Entry of the `machine-room` edge binary. The example agents are compiled in (built by
 * `deno task build:examples`, embedded by `deno task compile` via `--include`).
 *
 * @module
 */

const examples = ["http-probe", "service-keeper", "threshold-check", "exporter-scrape"];
const agents = Object.fromEntries(
  examples.map((n) => [n, new URL(`./wasm-examples/dist/${n}.wasm`, import.meta.url)]),
);

if (import.meta.main) {
  if (Deno.args[0] === "__sandbox-host") {
    // the sandbox host process (src/plugins/process/spawn.ts): loads only the runtime
    const { serveSandboxHost } = await import("./src/plugins/process/child_main.ts");
    await serveSandboxHost();
    Deno.exit(0);
  }
  // the CLI module, not src/mod.ts: the full public API would load the sandbox eagerly
  const { buildCli, runCli } = await import("./src/cli/mod.ts");
  Deno.exit(await runCli(buildCli({ agents })));
}
