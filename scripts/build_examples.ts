/**
 * Builds every example agent in wasm-examples/ into wasm-examples/dist/<name>.wasm.
 * (Language drivers are added with the examples.)
 *
 * @module
 */
await Deno.mkdir(new URL("../wasm-examples/dist/", import.meta.url), { recursive: true });
