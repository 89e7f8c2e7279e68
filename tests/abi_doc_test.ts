// plugins-sdk/ABI.md's host-function table, limits and error codes are generated from the
// one description of each host function (src/plugins/host/); this fails when they drift
// (fix: deno run -A scripts/abi_table.ts).
import { assert, assertEquals } from "@std/assert";
import { applyBlocks } from "../src/plugins/host/abi_doc.ts";
import { HOST_FUNCTIONS } from "../src/plugins/abi.ts";
import { HOST_FUNCTION_TABLE } from "../src/plugins/host/table.ts";
import { abiBlocks } from "./helpers/abi_blocks.ts";
import { grantsSchema } from "../src/desired/spec.ts";

Deno.test("ABI.md - the generated blocks match the host-function table, limits and error codes", async () => {
  const md = await Deno.readTextFile(new URL("../plugins-sdk/ABI.md", import.meta.url));
  assertEquals(applyBlocks(md, abiBlocks()), md, "run: deno run -A scripts/abi_table.ts");
  for (const f of HOST_FUNCTION_TABLE) assert(md.includes(`| \`${f.name}\` |`), f.name);
});

Deno.test("ABI.md - the load-time import check is the table's grant check", () => {
  assertEquals(Object.keys(HOST_FUNCTIONS), HOST_FUNCTION_TABLE.map((f) => f.name));
  const none = grantsSchema.parse({});
  const importable = Object.entries(HOST_FUNCTIONS).filter(([, ok]) => ok(none))
    .map(([n]) => n);
  assertEquals(importable, [
    "mr_log",
    "mr_state_get",
    "mr_state_put",
    "mr_is_leader",
    "mr_transition",
  ]);
});
