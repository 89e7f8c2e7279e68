/**
 * `deno task build:examples`: builds every example agent in `wasm-examples/` into
 * `wasm-examples/dist/<name>.wasm`, skipping those whose sources are older than their
 * output. Toolchains: AssemblyScript (`npm:assemblyscript` + `@extism/as-pdk`), C
 * (`clang --target=wasm32-unknown-unknown` + `lld`), Rust (Debian `rustc` with the
 * `wasm32-unknown-unknown` std), and the WASI ones: C with wasi-libc (`clang
 * --target=wasm32-wasi`, Debian `wasi-libc` + `libclang-rt-14-dev-wasm32`) and Rust std on
 * `wasm32-wasi` (`libstd-rust-dev-wasm32`). A missing tool fails with the package that
 * provides it.
 *
 * @module
 */
import { dirname, join } from "node:path";

const ROOT = new URL("../", import.meta.url).pathname;
const EX = join(ROOT, "wasm-examples");
const DIST = join(EX, "dist");
const SDK = join(ROOT, "plugins-sdk");

interface Example {
  name: string;
  lang: "as" | "c" | "rust" | "c-wasi" | "rust-wasi";
  /** Main source relative to the example dir. */
  main: string;
  /** Extra sources whose changes trigger a rebuild. */
  deps: string[];
}

const EXAMPLES: Example[] = [
  {
    name: "http-probe",
    lang: "as",
    main: "agent.ts",
    deps: [join(SDK, "assemblyscript/index.ts")],
  },
  {
    name: "exporter-scrape",
    lang: "as",
    main: "agent.ts",
    deps: [join(SDK, "assemblyscript/index.ts")],
  },
  { name: "threshold-check", lang: "c", main: "agent.c", deps: [join(SDK, "c/machine_room.h")] },
  {
    name: "service-keeper",
    lang: "rust",
    main: "agent.rs",
    deps: [join(SDK, "rust/machine_room.rs")],
  },
  { name: "file-watch", lang: "c-wasi", main: "agent.c", deps: [] },
  { name: "log-scan", lang: "rust-wasi", main: "agent.rs", deps: [] },
];

async function mtime(p: string): Promise<number> {
  try {
    return (await Deno.stat(p)).mtime?.getTime() ?? 0;
  } catch {
    return 0;
  }
}

async function run(cmd: string, args: string[], pkg: string, cwd = ROOT): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        `${cmd} not found: install the Debian package(s) ${pkg} (bash scripts/ensure-tools does it)`,
      );
    }
    throw err;
  }
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

function rustc(): string {
  // Debian's rustc has the wasm32 std; a rustup toolchain on PATH may not
  for (const p of ["/usr/bin/rustc", "rustc"]) {
    try {
      if (p.startsWith("/")) Deno.statSync(p);
      return p;
    } catch { /* next */ }
  }
  return "rustc";
}

async function build(ex: Example): Promise<boolean> {
  const dir = join(EX, ex.name);
  const src = join(dir, ex.main);
  const out = join(DIST, `${ex.name}.wasm`);
  const newest = Math.max(await mtime(src), ...(await Promise.all(ex.deps.map(mtime))));
  if ((await mtime(out)) > newest) return false;
  const tmp = `${out}.tmp`;
  if (ex.lang === "as") {
    const { default: asc } = await import("assemblyscript/asc");
    const r = await asc.main([
      `wasm-examples/${ex.name}/${ex.main}`,
      "--outFile",
      `wasm-examples/dist/${ex.name}.wasm.tmp`,
      "--runtime",
      "stub",
      "--optimize",
      "--noAssert",
      "--use",
      "abort=plugins-sdk/assemblyscript/index/mrAbort",
      "--path",
      join(ROOT, "node_modules"),
      "--baseDir",
      ROOT,
    ]);
    if (r.error) {
      throw new Error(`asc ${ex.name}: ${r.error.message}\n${r.stderr?.toString() ?? ""}`);
    }
  } else if (ex.lang === "c") {
    await run("clang", [
      "--target=wasm32-unknown-unknown",
      "-O2",
      "-nostdlib",
      "-ffreestanding",
      "-fno-builtin",
      `-I${join(SDK, "c")}`,
      "-Wl,--no-entry",
      "-Wl,--export-dynamic",
      "-Wl,--allow-undefined",
      "-Wl,--strip-all",
      "-o",
      tmp,
      src,
    ], "clang lld");
  } else if (ex.lang === "c-wasi") {
    await run("clang", [
      "--target=wasm32-wasi",
      "--sysroot=/usr",
      "-mexec-model=reactor",
      "-O2",
      "-Wl,--strip-all",
      "-o",
      tmp,
      src,
    ], "clang lld wasi-libc libclang-rt-14-dev-wasm32");
  } else if (ex.lang === "rust-wasi") {
    await run(
      rustc(),
      [
        "--target",
        "wasm32-wasi",
        "--crate-type",
        "cdylib",
        "--edition",
        "2018",
        "-C",
        "opt-level=s",
        "-C",
        "link-arg=--strip-all",
        "-o",
        tmp,
        src,
      ],
      "rustc libstd-rust-dev-wasm32",
      dirname(src),
    );
  } else {
    await run(
      rustc(),
      [
        "--target",
        "wasm32-unknown-unknown",
        "--crate-type",
        "cdylib",
        "--edition",
        "2018",
        "-C",
        "opt-level=s",
        "-C",
        "panic=abort",
        "-C",
        "link-arg=--strip-all",
        "-o",
        tmp,
        src,
      ],
      "rustc libstd-rust-dev-wasm32",
      dirname(src),
    );
  }
  await Deno.rename(tmp, out);
  return true;
}

if (import.meta.main) {
  await Deno.mkdir(DIST, { recursive: true });
  const only = Deno.args.filter((a) => !a.startsWith("-"));
  let failed = false;
  for (const ex of EXAMPLES) {
    if (only.length && !only.includes(ex.name)) continue;
    try {
      const built = await build(ex);
      const size = (await Deno.stat(join(DIST, `${ex.name}.wasm`))).size;
      console.error(
        `build:examples ${ex.name} (${ex.lang}) ${built ? "built" : "up to date"}, ${size} bytes`,
      );
    } catch (err) {
      failed = true;
      console.error(`build:examples ${ex.name}: ${(err as Error).message}`);
    }
  }
  if (failed) Deno.exit(1);
}

export { EXAMPLES };
