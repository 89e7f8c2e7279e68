import { assertEquals } from "@std/assert";
import { createAccount, createUser } from "@nats-io/nkeys";
import { isLoopbackHost, openSigned, provisionerUrlProblem } from "./verify.ts";

const enc = new TextEncoder();
const b64url = (b: Uint8Array) =>
  btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

Deno.test("verify - plain http only to loopback unless the token allows it", () => {
  for (const h of ["127.0.0.1", "127.8.9.10", "localhost", "[::1]"]) {
    assertEquals(isLoopbackHost(h), true, h);
  }
  for (const h of ["10.0.0.1", "example.com", "127.0.0.1.example.com", "::2"]) {
    assertEquals(isLoopbackHost(h), false, h);
  }
  assertEquals(provisionerUrlProblem("https://prov.example.com", false), null);
  assertEquals(provisionerUrlProblem("http://127.0.0.1:8470", false), null);
  assertEquals(provisionerUrlProblem("http://prov.example.com", true), null);
  for (const u of ["http://prov.example.com", "ftp://127.0.0.1", "not a url"]) {
    assertEquals(typeof provisionerUrlProblem(u, false), "string", u);
  }
});

Deno.test("verify - a signed answer opens only with the issuer's key, for this key and nonce", async () => {
  const prov = createAccount();
  const node = createUser();
  const sign = (p: Record<string, unknown>, by = prov) => {
    const bytes = enc.encode(JSON.stringify(p));
    return { payload: b64url(bytes), signature: b64url(by.sign(bytes)) };
  };
  const expect = { publicKey: node.getPublicKey(), nonce: "n1" };
  const good = { user_jwt: "a.b.c", public_key: node.getPublicKey(), nonce: "n1" };
  assertEquals((await openSigned(sign(good), prov.getPublicKey(), expect)) as unknown, good);
  const refusals: [string, unknown][] = [
    ["unsigned", { user_jwt: "a.b.c" }],
    ["another signer", sign(good, createAccount())],
    ["another nonce", sign({ ...good, nonce: "n0" })],
    ["another key", sign({ ...good, public_key: createUser().getPublicKey() })],
    ["no jwt", sign({ public_key: node.getPublicKey(), nonce: "n1" })],
    ["garbage", { payload: "!!", signature: "??" }],
  ];
  for (const [what, signed] of refusals) {
    assertEquals(typeof await openSigned(signed, prov.getPublicKey(), expect), "string", what);
  }
  // a payload edited after signing
  const s = sign(good);
  s.payload = b64url(enc.encode(JSON.stringify({ ...good, user_jwt: "x.y.z" })));
  assertEquals(typeof await openSigned(s, prov.getPublicKey(), expect), "string");
});
