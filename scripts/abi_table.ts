/**
 * Writes the generated blocks of plugins-sdk/ABI.md (host functions, limits at the
 * boundary, error codes) from src/plugins/host/. `deno run -A scripts/abi_table.ts`;
 * tests/abi_doc_test.ts checks ABI.md matches.
 *
 * @module
 */
import { abiBlocks } from "../tests/helpers/abi_blocks.ts";
import { applyBlocks } from "../src/plugins/host/abi_doc.ts";

const path = new URL("../plugins-sdk/ABI.md", import.meta.url);
const text = await Deno.readTextFile(path);
await Deno.writeTextFile(path, applyBlocks(text, abiBlocks()));
console.log("updated plugins-sdk/ABI.md");
