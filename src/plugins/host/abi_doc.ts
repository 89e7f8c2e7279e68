/**
 * The generated parts of plugins-sdk/ABI.md: the host-function table, the limits at the
 * boundary (with the sandbox's per-call host caps) and the error codes, all rendered from
 * the one description of each host function (table.ts), limits.ts and errors.ts.
 * `deno run -A scripts/abi_table.ts` rewrites the blocks; tests/abi_doc_test.ts checks
 * ABI.md matches.
 *
 * @module
 */
import { HOST_ERROR_DOCS } from "./errors.ts";
import { BOUNDARY_LIMITS, type LimitDoc } from "./limits.ts";
import { HOST_FUNCTION_TABLE } from "./table.ts";

const cell = (s: string) => s.replaceAll("\n", " ");

/** The host-function table (function, grant, input, output). */
export function hostFunctionTableMarkdown(): string {
  const rows = HOST_FUNCTION_TABLE.map((f) =>
    `| \`${f.name}\` | ${cell(f.grant)} | ${cell(f.inputDoc)} | ${cell(f.outputDoc)} |`
  );
  return ["| function | grant needed | input | output |", "|---|---|---|---|", ...rows].join(
    "\n",
  );
}

/** The limits table; `extra` rows come from the sandbox (per-call host caps). */
export function limitsTableMarkdown(extra: readonly LimitDoc[] = []): string {
  const rows = [...BOUNDARY_LIMITS, ...extra].map((l) =>
    `| ${cell(l.what)} | ${cell(l.limit)} | ${cell(l.error)} |`
  );
  return ["| what | limit | error |", "|---|---|---|", ...rows].join("\n");
}

/** The error codes and what each means. */
export function errorCodesMarkdown(): string {
  return Object.entries(HOST_ERROR_DOCS).map(([code, doc]) => `- \`${code}\`: ${doc}`).join(
    "\n",
  );
}

/** Replaces each `<!-- NAME:start -->` … `<!-- NAME:end -->` block of `md`. */
export function applyBlocks(md: string, blocks: Record<string, string>): string {
  let out = md;
  for (const [name, body] of Object.entries(blocks)) {
    const start = `<!-- ${name}:start -->`;
    const end = `<!-- ${name}:end -->`;
    const a = out.indexOf(start);
    const b = out.indexOf(end);
    if (a < 0 || b < a) throw new Error(`no ${start} … ${end} block`);
    out = out.slice(0, a) + `${start}\n${body}\n` + out.slice(b);
  }
  return out;
}
