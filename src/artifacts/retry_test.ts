import { assert, assertEquals, assertRejects } from "@std/assert";
import { ArtifactError, createArtifactStore } from "./mod.ts";
import { FakeClock } from "../util/clock.ts";

Deno.test("artifacts - download retries wait on the injected clock with jittered backoff", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const clock = new FakeClock();
    const at: number[] = [];
    const store = createArtifactStore({
      dir,
      clock,
      attempts: 4,
      fetchImpl: (() => {
        at.push(clock.monotonic());
        return Promise.resolve(new Response("busy", { status: 503 }));
      }) as typeof fetch,
    });
    const p = store.fetch({ sha256: "a".repeat(64), size: 4, url: "https://s3.example/x.wasm" });
    const failed = assertRejects(() => p, ArtifactError, "HTTP 503");
    // no real time passes: every wait is a fake timer
    while (at.length < 4) {
      await new Promise((r) => setTimeout(r, 1));
      await clock.next();
    }
    await failed;
    assertEquals(at.length, 4);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    // nominal 250, 500, 1000 ms, each jittered down by at most half
    for (const [i, g] of gaps.entries()) {
      const nominal = 250 * 2 ** i;
      assert(g >= nominal / 2 && g <= nominal, `gap ${i}: ${g} ms (nominal ${nominal})`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
