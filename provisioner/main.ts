/**
 * Entry of the SaaS-side `mr-saas` CLI.
 *
 * @module
 */
import { buildSaasCli, runSaasCli } from "./cli.ts";

if (import.meta.main) {
  Deno.exit(await runSaasCli(buildSaasCli()));
}
