// The content-addressed store against a real S3-protocol server (s3rver) with SigV4.
import { assert, assertEquals } from "@std/assert";
import { AwsClient } from "aws4fetch";
import { createHash } from "node:crypto";
import { startS3 } from "./helpers/s3.ts";
import { ArtifactError, createArtifactStore } from "../src/artifacts/mod.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ArtifactError) return err.code;
    throw err;
  }
  return "none";
}

Deno.test("artifacts - signed S3 download, verify, cache, shared downloads, refusals, gc", async () => {
  await using s3 = await startS3();
  const aws = new AwsClient({
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    region: s3.region,
    service: "s3",
  });
  const bytes = new Uint8Array(300_000).map((_, i) => (i * 7919) % 251);
  const hex = sha(bytes);
  const put = await aws.fetch(`${s3.endpoint}/${s3.bucket}/sha256/${hex}.wasm`, {
    method: "PUT",
    body: bytes,
  });
  assert(put.ok, `upload: ${put.status}`);
  const dir = await Deno.makeTempDir();
  try {
    let requests = 0;
    const store = createArtifactStore({
      dir,
      s3: s3.config,
      timeoutMs: 10_000,
      fetchImpl: (i, init) => {
        requests++;
        return fetch(i, init);
      },
    });
    const ref = { sha256: hex, size: bytes.length, url: `s3://${s3.bucket}/sha256/${hex}.wasm` };
    const [a, b] = await Promise.all([store.fetch(ref), store.fetch(ref)]);
    assertEquals(requests, 1, "concurrent fetches share one download");
    assertEquals(sha(a), hex);
    assertEquals(a, b);
    assert(await store.has(hex));
    assertEquals((await Deno.stat(store.path(hex))).mode! & 0o777, 0o600);
    await store.fetch(ref);
    assertEquals(requests, 1, "second fetch served from the cache");

    assertEquals(await code(store.fetch({ ...ref, sha256: "0".repeat(64) })), "hash_mismatch");
    assertEquals(
      await code(store.fetch({ ...ref, sha256: "1".repeat(64), size: 10 })),
      "size_mismatch",
    );
    assertEquals(
      await code(
        store.fetch({ sha256: "2".repeat(64), size: 5, url: `s3://${s3.bucket}/missing.wasm` }),
      ),
      "not_found",
    );
    // nothing half-written is left behind
    const names = [];
    for await (const e of Deno.readDir(`${dir}/sha256`)) names.push(e.name);
    assertEquals(names, [`${hex}.wasm`]);
    assertEquals(await store.gc(new Set([hex])), 0);
    assertEquals(await store.gc(new Set()), 1);
    assert(!(await store.has(hex)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("artifacts - plain http(s) URLs and retries on server errors", async () => {
  const bytes = new TextEncoder().encode("module bytes");
  let calls = 0;
  const srv = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => {
    calls++;
    return calls < 3 ? new Response("busy", { status: 503 }) : new Response(bytes);
  });
  const dir = await Deno.makeTempDir();
  try {
    const store = createArtifactStore({ dir });
    const got = await store.fetch({
      sha256: sha(bytes),
      size: bytes.length,
      url: `http://127.0.0.1:${srv.addr.port}/m.wasm`,
    });
    assertEquals(new TextDecoder().decode(got), "module bytes");
    assertEquals(calls, 3);
  } finally {
    await srv.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
