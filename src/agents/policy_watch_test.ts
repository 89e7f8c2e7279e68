import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { join } from "node:path";
import { FakeClock } from "../util/clock.ts";
import { createLogger } from "../log/logger.ts";
import { MAX_POLICY_BYTES, watchPolicy } from "./policy_watch.ts";
import { PolicyFileError } from "./policy.ts";

const logger = createLogger({ level: "silent" });

Deno.test("policy watch - live changes, malformed and oversized files keep the last good, deletion", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "policy.json");
  const clock = new FakeClock();
  const changes: (string | null)[] = [];
  const errors: string[] = [];
  try {
    const w = await watchPolicy({
      path,
      required: false,
      clock,
      logger,
      onChange: (p) => changes.push(p?.sha256 ?? null),
      onError: (m) => errors.push(m),
    });
    assertEquals(w.current(), null, "no file: no policy");
    await Deno.writeTextFile(path, '{"deny":{"names":["x"]}}');
    await w.check();
    assertEquals(w.current()?.policy.deny.names, ["x"]);
    const good = w.current()!.sha256;
    await Deno.writeTextFile(path, '{"deny":{"names":"x"}}');
    await w.check();
    assertEquals(w.current()?.sha256, good, "malformed: last good kept");
    assertStringIncludes(w.error()!, `${path}: deny.names`);
    await Deno.writeTextFile(path, " ".repeat(MAX_POLICY_BYTES + 1));
    await w.check();
    assertStringIncludes(w.error()!, "more than");
    assertEquals(w.current()?.sha256, good);
    await Deno.remove(path);
    await w.check();
    assertEquals(w.current(), null, "deleting the default file removes the policy");
    assertEquals(w.error(), null);
    assertEquals(changes, [good, null]);
    assertEquals(errors.length, 2);
    w.stop();
    assertEquals(clock.pending, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("policy watch - an explicit --policy file must exist and parse at start", async () => {
  const dir = await Deno.makeTempDir();
  const opts = { required: true, clock: new FakeClock(), logger, onChange: () => {} };
  try {
    await assertRejects(
      () => watchPolicy({ ...opts, path: join(dir, "none.json") }),
      PolicyFileError,
      "policy file not found",
    );
    await Deno.writeTextFile(join(dir, "bad.json"), "{");
    const err = await assertRejects(
      () => watchPolicy({ ...opts, path: join(dir, "bad.json") }),
      PolicyFileError,
    );
    assert(err.message.startsWith(join(dir, "bad.json")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
