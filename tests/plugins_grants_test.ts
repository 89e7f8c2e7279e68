// Hostile tests of file and exec grants through the sandbox: a dangling symlink write, a
// symlink swapped under a read, FIFOs and devices, uniform denials, PATH hijack and
// environment leaks.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { join } from "node:path";
import { grantsSchema, limitsSchema } from "../src/desired/spec.ts";
import { compileWat, setupSandbox } from "./helpers/wat.ts";

type Reply = Record<string, unknown> & { error?: { code: string; message: string } };
const limits = limitsSchema.parse({ fuel: 50_000_000, timeout_ms: 5_000, memory_mb: 4 });

async function tree() {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "mr-grants-" }));
  await Deno.mkdir(join(root, "allowed"));
  await Deno.mkdir(join(root, "outside"));
  await Deno.writeTextFile(join(root, "outside", "secret"), "top secret");
  return {
    root,
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

async function filesPlugin(t: Awaited<ReturnType<typeof setupSandbox>>, root: string) {
  return await t.sandbox.load(await compileWat("files"), {
    name: "files",
    grants: grantsSchema.parse({
      files: { read: [`${root}/allowed/**`, "/dev/zero"], write: [`${root}/allowed/*`] },
    }),
    limits,
  });
}

Deno.test("grants - writing through a dangling or live symlink in a granted dir never touches its target", async () => {
  await using t = await setupSandbox();
  await using d = await tree();
  const p = await filesPlugin(t, d.root);
  const target = join(d.root, "outside", "created.txt");
  await Deno.symlink(target, join(d.root, "allowed", "evil.log"));
  for (const append of [false, true]) {
    const r = await p.callJson<Reply>("mr_file_write", {
      path: join(d.root, "allowed", "evil.log"),
      content: "pwned",
      append,
    });
    assertEquals(r.error?.code, "capability_denied", JSON.stringify(r));
  }
  await Deno.stat(target).then(
    () => assert(false, "a file was created outside the grant"),
    () => {},
  );
  // a live symlink to an existing outside file: the file keeps its content
  await Deno.symlink(join(d.root, "outside", "secret"), join(d.root, "allowed", "live.log"));
  const r = await p.callJson<Reply>("mr_file_write", {
    path: join(d.root, "allowed", "live.log"),
    content: "overwritten",
  });
  assertEquals(r.error?.code, "capability_denied");
  assertEquals(await Deno.readTextFile(join(d.root, "outside", "secret")), "top secret");
  // a plain write replaces the file atomically (no temp file left behind)
  const ok = await p.callJson<Reply>("mr_file_write", {
    path: join(d.root, "allowed", "plain.txt"),
    content: "v1",
  });
  assertEquals(ok, { bytes: 2 });
  assertEquals(await Deno.readTextFile(join(d.root, "allowed", "plain.txt")), "v1");
  const names = (await Array.fromAsync(Deno.readDir(join(d.root, "allowed")))).map((e) => e.name);
  assert(!names.some((n) => n.includes("mr-tmp")), names.join(","));
});

Deno.test("grants - a symlink swapped in and out under reads never yields the outside file", async () => {
  await using t = await setupSandbox();
  await using d = await tree();
  const p = await filesPlugin(t, d.root);
  const f = join(d.root, "allowed", "swap");
  let stop = false;
  const swapper = (async () => {
    while (!stop) {
      await Deno.writeTextFile(`${f}.new`, "inside");
      await Deno.rename(`${f}.new`, f);
      await new Promise((r) => setTimeout(r, 0));
      await Deno.remove(f).catch(() => {});
      await Deno.symlink(join(d.root, "outside", "secret"), f).catch(() => {});
      await new Promise((r) => setTimeout(r, 0));
      await Deno.remove(f).catch(() => {});
    }
  })();
  // also through a symlinked directory swapped in for a real one
  const seen = new Set<string>();
  for (let i = 0; i < 150; i++) {
    const r = await p.callJson<Reply>("mr_file_read", { path: f });
    assert(!JSON.stringify(r).includes("top secret"), "read the outside file");
    seen.add(r.error?.code ?? "content");
  }
  stop = true;
  await swapper;
  assert(seen.has("capability_denied") || seen.has("not_found"), [...seen].join(","));
  await Deno.remove(join(d.root, "allowed", "dir"), { recursive: true }).catch(() => {});
  await Deno.symlink(join(d.root, "outside"), join(d.root, "allowed", "dir"));
  const viaDir = await p.callJson<Reply>("mr_file_read", {
    path: join(d.root, "allowed", "dir", "secret"),
  });
  assertEquals(viaDir.error?.code, "capability_denied");
});

Deno.test("grants - a FIFO and /dev/zero are refused at once as not regular files", async () => {
  await using t = await setupSandbox();
  await using d = await tree();
  const p = await filesPlugin(t, d.root);
  const fifo = join(d.root, "allowed", "pipe");
  const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assertEquals(mk.code, 0);
  const started = Date.now();
  const r = await p.callJson<Reply>("mr_file_read", { path: fifo });
  assertEquals(r.error?.code, "invalid_input", JSON.stringify(r));
  assertMatch(r.error!.message, /Not a regular file/);
  const z = await p.callJson<Reply>("mr_file_read", { path: "/dev/zero" });
  assertEquals(z.error?.code, "invalid_input", JSON.stringify(z));
  assert(Date.now() - started < limits.timeout_ms, "neither read blocked");
  // and the plugin is fine afterwards
  await Deno.writeTextFile(join(d.root, "allowed", "ok.txt"), "fine");
  assertEquals(await p.callJson("mr_file_read", { path: join(d.root, "allowed", "ok.txt") }), {
    content: "fine",
  });
});

Deno.test("grants - denials are uniform: nothing tells whether a path outside the grant exists", async () => {
  await using t = await setupSandbox();
  await using d = await tree();
  const p = await filesPlugin(t, d.root);
  await Deno.symlink(join(d.root, "outside"), join(d.root, "allowed", "link"));
  const norm = (r: Reply, path: string) =>
    JSON.stringify(r).replaceAll(path, "<path>").replaceAll(JSON.stringify(path), "<path>");
  const pairs: [string, string][] = [
    [join(d.root, "outside", "secret"), join(d.root, "outside", "nope")],
    [join(d.root, "allowed", "link", "secret"), join(d.root, "allowed", "link", "nope")],
    [
      join(d.root, "allowed", "..", "outside", "secret"),
      join(d.root, "allowed", "..", "outside", "nope"),
    ],
    ["/etc/passwd", "/etc/no-such-file-here"],
  ];
  for (const fn of ["mr_file_read", "mr_file_write"]) {
    for (const [exists, missing] of pairs) {
      const input = (path: string) => fn === "mr_file_read" ? { path } : { path, content: "x" };
      const a = await p.callJson<Reply>(fn, input(exists));
      const b = await p.callJson<Reply>(fn, input(missing));
      assertEquals(a.error?.code, "capability_denied", `${fn} ${exists}`);
      assertEquals(norm(a, exists), norm(b, missing), `${fn}: ${exists} vs ${missing}`);
      assert(!a.error!.message.includes(d.root + "/outside/") || a.error!.message.includes(exists));
    }
  }
});

Deno.test("grants - mr_exec ignores the daemon's PATH and environment and runs in a fixed directory", async () => {
  // a child "daemon" with a hijacked PATH and a secret in its environment
  const evil = await Deno.makeTempDir({ prefix: "mr-evil-" });
  try {
    await Deno.writeTextFile(join(evil, "echo"), "#!/bin/sh\necho HIJACKED\n", { mode: 0o755 });
    await Deno.writeTextFile(join(evil, "mr-only-here"), "#!/bin/sh\necho found\n", {
      mode: 0o755,
    });
    const child = new URL("./fixtures/exec_env_child.ts", import.meta.url);
    const o = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", child.pathname],
      env: { PATH: `${evil}:${Deno.env.get("PATH")}`, MR_LEAK_CHECK: "daemon-secret" },
      cwd: evil,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(o.stdout);
    assertEquals(o.code, 0, new TextDecoder().decode(o.stderr));
    const r = JSON.parse(text.trim().split("\n").at(-1)!);
    assertEquals(r.echo.stdout, "hi\n", "argv[0] resolved over the fixed search path");
    assertEquals(r.onlyOnDaemonPath.error.code, "not_found");
    const env = r.env.stdout as string;
    assert(!env.includes("daemon-secret"), env);
    assert(!env.includes(evil), env);
    assertMatch(env, /^PATH=\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
    assertMatch(env, /^LANG=C$/m);
    assertEquals(r.pwd.stdout, "/\n");
  } finally {
    await Deno.remove(evil, { recursive: true });
  }
});
