import { assertEquals, assertThrows } from "@std/assert";
import { createSigningKey, EnvelopeError, openEnvelope, signSpec } from "./envelope.ts";

const spec = {
  version: 3,
  agents: [{
    name: "keeper",
    wasm: { sha256: "a".repeat(64), size: 10, url: "s3://b/sha256/" + "a".repeat(64) + ".wasm" },
  }],
};

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof EnvelopeError) return err.code;
    throw err;
  }
  return "none";
}

Deno.test("envelope - sign and open round trip; refusals carry a code", () => {
  const k = createSigningKey();
  const other = createSigningKey();
  const env = signSpec(spec, k.seed);
  assertEquals(env.key, k.publicKey);
  const opened = openEnvelope(new TextEncoder().encode(JSON.stringify(env)), [k.publicKey]);
  assertEquals(opened.spec.version, 3);
  assertEquals(opened.spec.agents[0]!.name, "keeper");
  assertEquals(code(() => openEnvelope(env, [other.publicKey])), "untrusted_key");
  const forged = { ...signSpec({ ...spec, version: 4 }, other.seed), key: k.publicKey };
  assertEquals(code(() => openEnvelope(forged, [k.publicKey])), "bad_signature");
  const tampered = { ...env, spec: btoa(JSON.stringify({ ...spec, version: 99 })) };
  assertEquals(code(() => openEnvelope(tampered, [k.publicKey])), "bad_signature");
  assertEquals(code(() => openEnvelope("{nope", [k.publicKey])), "malformed");
  assertEquals(
    code(() => openEnvelope({ spec: "", sig: "x", key: k.publicKey }, [k.publicKey])),
    "malformed",
  );
  const bad = signSpec(new TextEncoder().encode(JSON.stringify(spec)), k.seed);
  assertEquals(openEnvelope(bad, [k.publicKey]).spec.version, 3);
  assertThrows(() => signSpec({ version: 0, agents: [] }, k.seed), TypeError);
});

Deno.test("envelope - a signed but invalid spec is refused naming the path", () => {
  const k = createSigningKey();
  const bytes = new TextEncoder().encode(
    JSON.stringify({ version: 2, agents: [{ name: "x", wasm: {} }] }),
  );
  // signSpec validates raw bytes too: a buggy publisher cannot sign an invalid spec
  let msg = "";
  try {
    signSpec(bytes, k.seed);
  } catch (err) {
    msg = (err as Error).message;
  }
  assertEquals(/agents\.0\.wasm/.test(msg), true, msg);
});
