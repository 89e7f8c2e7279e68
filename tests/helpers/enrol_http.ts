/**
 * Enrolment and renewal requests made the way a node makes them (nkeys user key, signed
 * nonce), straight over HTTP, for tests that play many nodes or a hostile one.
 *
 * @module
 */
import { createUser, type KeyPair } from "@nats-io/nkeys";

const enc = new TextEncoder();

/** base64url without padding. */
export function b64url(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A fresh nonce from the provisioner at `url`. */
export async function getNonce(url: string): Promise<string> {
  const r = await fetch(`${url}/v1/nonce`);
  const body = await r.json();
  if (!r.ok) throw new Error(`nonce: ${r.status} ${JSON.stringify(body)}`);
  return body.nonce;
}

/** Status and parsed JSON body of a response. */
export interface Answer {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** POSTs `body` as JSON to `url + path`. */
export async function post(url: string, path: string, body: unknown): Promise<Answer> {
  const r = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: r.status, body: parsed };
}

/** Enrols `node` with `token` under `kp` (a new user key unless given). */
export async function enrolHttp(
  url: string,
  token: string,
  node: string,
  kp: KeyPair = createUser(),
): Promise<Answer & { kp: KeyPair }> {
  const nonce = await getNonce(url);
  const a = await post(url, "/v1/enroll", {
    token,
    public_key: kp.getPublicKey(),
    nonce,
    signature: b64url(kp.sign(enc.encode(nonce))),
    node,
  });
  return { ...a, kp };
}

/** Renews `userJwt` proving possession with `kp` (`nonce` fetched unless given). */
export async function renewHttp(
  url: string,
  userJwt: string,
  kp: KeyPair,
  nonce?: string,
): Promise<Answer & { nonce: string; signature: string }> {
  const n = nonce ?? await getNonce(url);
  const signature = b64url(kp.sign(enc.encode(n)));
  const a = await post(url, "/v1/renew", { user_jwt: userJwt, nonce: n, signature });
  return { ...a, nonce: n, signature };
}
