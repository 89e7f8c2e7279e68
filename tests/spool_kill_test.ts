import { assert, assertEquals } from "@std/assert";
import { DatabaseSync } from "node:sqlite";
import { tempDir } from "./helpers/nats_server.ts";
import { openSpool } from "../src/spool/mod.ts";

const CHILD = new URL("../src/spool/testdata/append_child.ts", import.meta.url).pathname;

Deno.test("spool - kill -9 mid-burst loses no appended message and leaves the DB intact", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/spool.db`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", CHILD, path],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const printed: string[] = [];
  let tail = "";
  const dec = new TextDecoder();
  const reader = child.stdout.getReader();
  while (printed.length < 3000) {
    const { value, done } = await reader.read();
    if (done) break;
    tail += dec.decode(value, { stream: true });
    const lines = tail.split("\n");
    tail = lines.pop()!;
    printed.push(...lines.filter((l) => l.length > 0));
  }
  child.kill("SIGKILL");
  // keep reading what was printed before the kill
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    tail += dec.decode(value, { stream: true });
    const lines = tail.split("\n");
    tail = lines.pop()!;
    printed.push(...lines.filter((l) => l.length > 0));
  }
  const status = await child.status;
  await child.stderr.cancel();
  assertEquals(status.signal, "SIGKILL");
  assert(printed.length >= 3000, `child printed ${printed.length} ids`);

  const db = new DatabaseSync(path);
  try {
    const ic = db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[];
    assertEquals(ic.map((r) => r.integrity_check), ["ok"]);
  } finally {
    db.close();
  }
  const sp = openSpool(path);
  try {
    const all = new Set(sp.next(1_000_000).map((m) => m.id));
    const missing = printed.filter((id) => !all.has(id));
    assertEquals(missing, [], `${missing.length} acknowledged ids missing`);
    assert(all.size >= printed.length);
    assertEquals(sp.stats().depth, all.size);
  } finally {
    sp.close();
  }
});
