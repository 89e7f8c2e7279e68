// The runtime's wiring ({store, sandbox, clock}): selection by match and leadership,
// removal (agent.v1.removed, cache kept), builtin:<name> checks, running.json behind its
// schema (a corrupt file is reported and ignored) — fake store and sandbox, fake clock.
import { assert, assertEquals } from "@std/assert";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { type AgentSpec, agentSpecSchema } from "../desired/spec.ts";
import type { EffectiveSpec } from "../desired/watcher.ts";
import type { AgentPlugin, Sandbox } from "../plugins/types.ts";
import { createLogger } from "../log/logger.ts";
import { FakeClock } from "../util/clock.ts";
import { createAgentRuntime } from "./runtime.ts";

/** Retries `check` (assertions) until it passes; running.json is written asynchronously. */
async function eventually(check: () => Promise<void> | void, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
const readRunning = async (dir: string) =>
  JSON.parse(await Deno.readTextFile(join(dir, "agents", "running.json")));

function fakeSandbox(calls: string[]): Pick<Sandbox, "load"> {
  return {
    load: (_bytes, o) =>
      Promise.resolve(
        {
          name: o.name,
          info: {} as AgentPlugin["info"],
          lastCall: null,
          has: (fn: string) => fn === "mr_reconcile" || fn === "mr_shutdown",
          call: (fn: string) => {
            calls.push(`${o.name}:${fn}`);
            return Promise.resolve(new Uint8Array());
          },
          callJson: <T>(fn: string) => {
            calls.push(`${o.name}:${fn}`);
            return Promise.resolve({ status: "ok" } as T);
          },
          close: () => Promise.resolve(),
        } satisfies AgentPlugin,
      ),
  };
}

const hex = (c: string) => c.repeat(64);
const spec = (name: string, extra: Record<string, unknown> = {}): AgentSpec =>
  agentSpecSchema.parse({
    name,
    wasm: { sha256: hex("a"), size: 1, url: "s3://b/a.wasm" },
    ...extra,
  });
const effective = (agents: AgentSpec[], version = 1): EffectiveSpec => ({
  agents,
  versions: { "site.s1": version },
  source: "kv",
  origins: Object.fromEntries(
    agents.map((a) => [a.name, { key: "site.s1", version, signer: "AKEY" }]),
  ),
  removed: [],
  settings: {},
});

async function setup(o: { leader?: boolean; builtin?: Record<string, Uint8Array> } = {}) {
  const dir = await Deno.makeTempDir();
  const calls: string[] = [];
  const events: { agent: string; event: string; data: Record<string, unknown> }[] = [];
  const kept: Set<string>[] = [];
  let leader = o.leader ?? true;
  const rt = createAgentRuntime({
    store: {
      fetch: () => Promise.resolve(new Uint8Array([1])),
      gc: (keep) => {
        kept.push(keep);
        return Promise.resolve(0);
      },
    },
    sandbox: () => Promise.resolve(fakeSandbox(calls)),
    clock: new FakeClock(),
    logger: createLogger({ level: "silent" }),
    runningFile: join(dir, "agents", "running.json"),
    facts: () => ({ os: { platform: "linux" } }),
    isLeader: () => leader,
    emit: (agent, event, data) => events.push({ agent, event, data }),
    ...(o.builtin
      ? {
        builtin: Object.fromEntries(
          Object.entries(o.builtin).map(([k, v]) => [k, () => Promise.resolve(v)]),
        ),
      }
      : {}),
  });
  return {
    rt,
    dir,
    calls,
    events,
    kept,
    setLeader: (v: boolean) => (leader = v),
    names: (agent: string) => events.filter((e) => e.agent === agent).map((e) => e.event),
    async [Symbol.asyncDispose]() {
      await rt.stop("test");
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("runtime - match and leader_only select agents; a leadership change starts them", async () => {
  await using t = await setup({ leader: false });
  t.rt.apply(
    effective([
      spec("all"),
      spec("mac", { match: { "os.platform": "darwin" } }),
      spec("lead", { leader_only: true }),
    ]),
    "spec",
  );
  await eventually(() =>
    assertEquals(t.rt.list().map((a) => [a.name, a.state]), [["all", "running"]])
  );
  t.setLeader(true);
  t.rt.apply(null, "leadership");
  await eventually(() => assertEquals(t.rt.supervisor("lead")?.state, "running"));
  t.setLeader(false);
  t.rt.apply(null, "leadership");
  await eventually(() => assertEquals(t.rt.supervisor("lead")?.state, "stopped"));
  assertEquals(t.names("lead").at(-1), "stopped");
  assertEquals(t.rt.list().find((a) => a.name === "all")!.origin?.signer, "AKEY");
});

Deno.test("runtime - an agent gone from the spec is removed; its module stays in the keep-set", async () => {
  await using t = await setup();
  const b = spec("b", { wasm: { sha256: hex("b"), size: 1, url: "s3://b/b.wasm" } });
  t.rt.apply(effective([spec("a"), b]), "spec");
  await eventually(() => assertEquals(t.rt.supervisor("b")?.state, "running"));
  t.rt.apply(effective([spec("a")], 2), "spec");
  await eventually(() => assertEquals(t.names("b"), ["started", "removed"]));
  await eventually(() => assertEquals(t.rt.list().map((a) => a.name), ["a"]));
  assert(t.calls.includes("b:mr_shutdown"));
  await eventually(() =>
    assert(t.kept.at(-1)?.has(hex("b")), "the removed agent's module is kept for a rollback")
  );
  await eventually(async () => {
    const running = await readRunning(t.dir);
    assertEquals(Object.keys(running.agents), ["a"]);
    assertEquals(running.history.b, [hex("b")]);
  });
});

Deno.test("runtime - builtin:<name>: the hash is checked, an unknown name is refused", async () => {
  const bytes = new Uint8Array([0, 97, 115, 109]);
  const sha = createHash("sha256").update(bytes).digest("hex");
  await using t = await setup({ builtin: { good: bytes } });
  t.rt.apply(
    effective([
      spec("ok", { wasm: { sha256: sha, size: 4, url: "builtin:good" } }),
      spec("forged", { wasm: { sha256: hex("c"), size: 4, url: "builtin:good" } }),
      spec("short", { wasm: { sha256: sha, size: 5, url: "builtin:good" } }),
      spec("missing", { wasm: { sha256: sha, size: 4, url: "builtin:nope" } }),
    ]),
    "spec",
  );
  const code = (agent: string) =>
    t.events.find((e) => e.agent === agent && e.event === "rejected")?.data.code;
  await eventually(() => {
    assertEquals(t.rt.supervisor("ok")?.state, "running");
    assertEquals(code("forged"), "hash_mismatch");
    assertEquals(code("short"), "size_mismatch");
    assertEquals(code("missing"), "not_found");
  });
});

Deno.test("runtime - a corrupt running.json is reported and ignored; the desired state still runs", async () => {
  await using t = await setup();
  await Deno.mkdir(join(t.dir, "agents"), { recursive: true });
  await Deno.writeTextFile(
    join(t.dir, "agents", "running.json"),
    JSON.stringify({ version: 1, agents: { x: { name: "x" } } }),
  );
  await t.rt.restore();
  assertEquals(t.rt.list(), []);
  t.rt.apply(effective([spec("a")]), "spec");
  await eventually(() => assertEquals(t.rt.supervisor("a")?.state, "running"));
  await eventually(async () => {
    const running = await readRunning(t.dir);
    assertEquals(running.version, 1);
    assertEquals(Object.keys(running.agents), ["a"]);
  });
});
