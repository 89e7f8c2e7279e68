import { assert, assertEquals } from "@std/assert";
import { createAccount, createUser, fromPublic } from "@nats-io/nkeys";
import { encodeUser } from "@nats-io/jwt";
import { nkeySigner, nkeyVerify, resignJwt } from "./ed25519.ts";

Deno.test("ed25519 - WebCrypto signatures are identical to nkeys'", async () => {
  const kp = createUser();
  const data = new TextEncoder().encode("nonce-123");
  const seed = new TextDecoder().decode(kp.getSeed());
  const sign = await nkeySigner(seed);
  const fast = await sign(data);
  assertEquals(fast, kp.sign(data));
  assert(await nkeyVerify(kp.getPublicKey(), data, fast));
  assert(!(await nkeyVerify(kp.getPublicKey(), new TextEncoder().encode("other"), fast)));
  assert(fromPublic(kp.getPublicKey()).verify(data, fast));
});

Deno.test("ed25519 - a re-signed user JWT verifies like the original", async () => {
  const acct = createAccount();
  const user = createUser();
  const jwt = await encodeUser("n1", user, acct, {});
  const again = await resignJwt(jwt, await nkeySigner(new TextDecoder().decode(acct.getSeed())));
  assertEquals(again, jwt);
});
