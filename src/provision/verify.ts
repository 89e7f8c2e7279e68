/**
 * What the node checks before it trusts a provisioner: the URL's transport (plain http only
 * to loopback, or when the token says `insecure_http`), and the enrolment response's
 * signature with the key that issued the token (so a man in the middle, or a provisioner
 * the token does not name, cannot hand the node spec keys or NATS servers).
 *
 * @module
 */
import { nkeyVerify } from "../util/ed25519.ts";

const dec = new TextDecoder();

function b64urlDecode(s: string): Uint8Array {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Refuses a provisioner URL the node must not enrol with: not http(s), or plain http to a
 * non-loopback host unless `allowHttp`. Returns the refusal reason or null.
 */
export function provisionerUrlProblem(url: string, allowHttp: boolean): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `provisioner URL "${url}" is not a URL`;
  }
  if (u.protocol === "https:") return null;
  if (u.protocol !== "http:") return `provisioner URL "${url}" is not http(s)`;
  if (isLoopbackHost(u.hostname) || allowHttp) return null;
  return `provisioner URL "${url}" is plain http to a non-loopback host: use https, or issue the token with --allow-http`;
}

/** The verified payload of an enrolment response. */
export interface SignedEnrolment {
  user_jwt: string;
  config: Record<string, unknown>;
  public_key: string;
  nonce: string;
}

/**
 * Verifies `signed` (base64url payload + signature) with `issuer` (the token's `iss`) and
 * that it answers this node's key and nonce; returns the payload or a refusal reason.
 */
export async function openSigned(
  signed: unknown,
  issuer: string,
  expect: { publicKey: string; nonce: string },
): Promise<Record<string, unknown> | string> {
  const s = signed as { payload?: unknown; signature?: unknown } | null;
  if (!s || typeof s.payload !== "string" || typeof s.signature !== "string") {
    return "the provisioner's response is not signed";
  }
  let bytes: Uint8Array, ok = false;
  try {
    bytes = b64urlDecode(s.payload);
    ok = await nkeyVerify(issuer, bytes, b64urlDecode(s.signature));
  } catch {
    return "the provisioner's response signature is malformed";
  }
  if (!ok) return "the provisioner's response is not signed by the token's issuer";
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(dec.decode(bytes));
  } catch {
    return "the provisioner's signed payload is not JSON";
  }
  if (p.public_key !== expect.publicKey || p.nonce !== expect.nonce) {
    return "the provisioner's signed response answers another request";
  }
  if (typeof p.user_jwt !== "string") return "the provisioner's signed payload lacks user_jwt";
  return p;
}

/** {@linkcode openSigned} for an enrolment answer (which also carries the config). */
export async function openSignedEnrolment(
  signed: unknown,
  issuer: string,
  expect: { publicKey: string; nonce: string },
): Promise<SignedEnrolment | string> {
  const p = await openSigned(signed, issuer, expect);
  if (typeof p === "string") return p;
  if (!p.config || typeof p.config !== "object") {
    return "the provisioner's signed payload lacks config";
  }
  return p as unknown as SignedEnrolment;
}
