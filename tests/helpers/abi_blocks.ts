/**
 * The generated blocks of plugins-sdk/ABI.md, with the sandbox's per-call host caps
 * (src/plugins/sandbox.ts) beside the host-function limits.
 *
 * @module
 */
import {
  errorCodesMarkdown,
  hostFunctionTableMarkdown,
  limitsTableMarkdown,
} from "../../src/plugins/host/abi_doc.ts";
import { HOST_CALLS_MAX, HOST_REPLY_BYTES_MAX } from "../../src/plugins/sandbox.ts";

/** Block name → markdown. */
export function abiBlocks(): Record<string, string> {
  return {
    "host-functions": hostFunctionTableMarkdown(),
    "boundary-limits": limitsTableMarkdown([
      {
        what: "host-function calls per export call",
        limit: HOST_CALLS_MAX.toLocaleString("en-US"),
        error: "the call stops with `fuel_exhausted`",
      },
      {
        what: "host-reply bytes per export call",
        limit: `${HOST_REPLY_BYTES_MAX / 1024 / 1024} MiB (and counted in \`memory_mb\`)`,
        error: "the call stops with `memory_limit`",
      },
    ]),
    "error-codes": errorCodesMarkdown(),
  };
}
