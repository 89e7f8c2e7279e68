/**
 * Writes the node permission table (provisioner/permissions.ts) into README.md and
 * docs/provisioning.md between `<!-- permissions-table:start -->` and `:end -->`.
 * `deno run -A scripts/permissions_table.ts`; tests/permission_matrix_test.ts checks the
 * docs match.
 *
 * @module
 */
import { permissionTableMarkdown } from "../provisioner/permissions.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const START = "<!-- permissions-table:start -->";
const END = "<!-- permissions-table:end -->";

for (const f of ["README.md", "docs/provisioning.md"]) {
  const path = `${ROOT}${f}`;
  const text = await Deno.readTextFile(path);
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${f}: no ${START} … ${END} block`);
  const block = `${START}\n<!-- deno-fmt-ignore-start -->\n\n${permissionTableMarkdown()}\n\n` +
    `<!-- deno-fmt-ignore-end -->\n`;
  await Deno.writeTextFile(path, text.slice(0, a) + block + text.slice(b));
  console.log(`updated ${f}`);
}
