// Test child for tests/spool_kill_test.ts: appends counter events forever (single and
// batched), printing each id once append()/appendMany() has returned. Killed with SIGKILL.
import { openSpool } from "../mod.ts";
import { createUlidFactory } from "../../util/ulid.ts";

const path = Deno.args[0];
if (!path) throw new Error("usage: append_child.ts SPOOL_PATH");
const sp = openSpool(path);
const ulid = createUlidFactory();
const enc = new TextEncoder();
const out = Deno.stdout;
let i = 0;
const make = () => ({
  id: ulid(),
  subject: "mr.s.n.ev.test",
  payload: enc.encode(JSON.stringify({ counter: i++, pad: "p".repeat(200) })),
  priority: i % 5,
  expiresAt: Date.now() + 3600_000,
});
for (;;) {
  if (i % 2 === 0) {
    const m = make();
    sp.append(m);
    out.writeSync(enc.encode(m.id + "\n"));
  } else {
    const batch = [make(), make(), make()];
    sp.appendMany(batch);
    out.writeSync(enc.encode(batch.map((m) => m.id).join("\n") + "\n"));
  }
}
