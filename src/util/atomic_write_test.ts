import { assert, assertEquals, assertRejects } from "@std/assert";
import { join } from "node:path";
import { atomicReplace, atomicWrite } from "./atomic_write.ts";

Deno.test("atomic write - replaces content, 0600 by default, no temp file left", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = join(dir, "node.creds");
    await Deno.writeTextFile(p, "old", { mode: 0o644 });
    await atomicWrite(p, "secret");
    assertEquals(await Deno.readTextFile(p), "secret");
    assertEquals((await Deno.stat(p)).mode! & 0o777, 0o600);
    await atomicWrite(p, new Uint8Array([1, 2, 3]), { mode: 0o644 });
    assertEquals(await Deno.readFile(p), new Uint8Array([1, 2, 3]));
    assertEquals((await Deno.stat(p)).mode! & 0o777, 0o644);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assertEquals(names, ["node.creds"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic write - a failed fill keeps the old file and removes the temp", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = join(dir, "m.wasm");
    await Deno.writeTextFile(p, "good");
    await assertRejects(
      () =>
        atomicReplace(p, async (f) => {
          await f.write(new TextEncoder().encode("partial"));
          throw new Error("hash mismatch");
        }),
      Error,
      "hash mismatch",
    );
    assertEquals(await Deno.readTextFile(p), "good");
    assertEquals([...Deno.readDirSync(dir)].length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic write - a missing directory is an error naming it", async () => {
  const err = await assertRejects(() => atomicWrite("/nonexistent-dir-mr/x", "a"));
  assert(err instanceof Deno.errors.NotFound);
});

Deno.test("atomic write - a large body is written in full", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = join(dir, "big");
    const body = new Uint8Array(3 * 1024 * 1024).map((_, i) => i & 0xff);
    await atomicWrite(p, body, { sync: false });
    assertEquals((await Deno.readFile(p)).byteLength, body.byteLength);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
