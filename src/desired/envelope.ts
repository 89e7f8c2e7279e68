/**
 * Signed desired-state envelopes (DESIGN §4): the KV value
 * `{"spec": base64(bytes), "sig": base64url(ed25519 over those bytes), "key": "<public nkey>"}`.
 *
 * Signing keys are nkeys of the **account** type (seed `SA…`, public key `A…`), created by
 * `mr-saas key create`. A node accepts a spec only when `key` is in its trust list
 * (`trust.spec_keys`), the signature verifies over the exact spec bytes, and the bytes
 * parse as a valid spec.
 *
 * @module
 */
import { createAccount, fromPublic, fromSeed, type KeyPair } from "@nats-io/nkeys";
import { parseSpec, type Spec } from "./spec.ts";

/** The envelope stored in KV `MR_DESIRED`. */
export interface Envelope {
  spec: string;
  sig: string;
  key: string;
}

/** Why an envelope was refused. */
export type EnvelopeErrorCode = "malformed" | "untrusted_key" | "bad_signature" | "invalid_spec";

/** A refused envelope; `code` says why, `message` names the problem. */
export class EnvelopeError extends Error {
  override name = "EnvelopeError";
  constructor(readonly code: EnvelopeErrorCode, message: string) {
    super(message);
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function b64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function unb64(text: string): Uint8Array {
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function b64url(bytes: Uint8Array): string {
  return b64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Creates a new spec-signing key pair; returns the seed (secret) and the public key. */
export function createSigningKey(): { seed: string; publicKey: string } {
  const kp = createAccount();
  return { seed: dec.decode(kp.getSeed()), publicKey: kp.getPublicKey() };
}

/** Loads a signing key from its seed text (`SA…`). */
export function signingKeyFromSeed(seed: string | Uint8Array): KeyPair {
  const text = typeof seed === "string" ? seed.trim() : dec.decode(seed).trim();
  try {
    return fromSeed(enc.encode(text));
  } catch (err) {
    throw new TypeError(`Invalid signing key seed: ${(err as Error).message}`);
  }
}

/**
 * Signs a spec: validates it (throws `TypeError` naming the path when invalid), serialises
 * it and returns the envelope. `spec` may be an object or the exact bytes to sign.
 */
export function signSpec(
  spec: Spec | unknown | Uint8Array,
  seed: string | Uint8Array | KeyPair,
): Envelope {
  const kp = typeof seed === "object" && "sign" in seed
    ? seed as KeyPair
    : signingKeyFromSeed(seed as string);
  const bytes = spec instanceof Uint8Array ? spec : enc.encode(JSON.stringify(parseSpec(spec)));
  if (spec instanceof Uint8Array) parseSpec(JSON.parse(dec.decode(bytes)));
  return { spec: b64(bytes), sig: b64url(kp.sign(bytes)), key: kp.getPublicKey() };
}

/** The result of {@linkcode openEnvelope}. */
export interface OpenedSpec {
  spec: Spec;
  /** The signed bytes. */
  bytes: Uint8Array;
  /** The signer's public key. */
  key: string;
}

/**
 * Verifies and parses an envelope (the KV value bytes, its JSON text, or the parsed
 * object) against the trust list. Throws {@linkcode EnvelopeError}.
 */
export function openEnvelope(
  value: Uint8Array | string | unknown,
  trusted: readonly string[],
): OpenedSpec {
  let env: unknown = value;
  try {
    if (value instanceof Uint8Array) env = JSON.parse(dec.decode(value));
    else if (typeof value === "string") env = JSON.parse(value);
  } catch (err) {
    throw new EnvelopeError("malformed", `envelope is not JSON: ${(err as Error).message}`);
  }
  if (typeof env !== "object" || env === null) {
    throw new EnvelopeError("malformed", "envelope must be an object {spec, sig, key}");
  }
  const e = env as Record<string, unknown>;
  for (const f of ["spec", "sig", "key"]) {
    if (typeof e[f] !== "string" || e[f] === "") {
      throw new EnvelopeError("malformed", `envelope field "${f}" must be a non-empty string`);
    }
  }
  const key = e.key as string;
  if (!trusted.includes(key)) {
    throw new EnvelopeError("untrusted_key", `spec signed by untrusted key ${key}`);
  }
  let bytes: Uint8Array;
  let sig: Uint8Array;
  try {
    bytes = unb64(e.spec as string);
    sig = unb64(e.sig as string);
  } catch {
    throw new EnvelopeError("malformed", "envelope fields spec/sig must be base64");
  }
  let ok = false;
  try {
    ok = fromPublic(key).verify(bytes, sig);
  } catch (err) {
    throw new EnvelopeError("malformed", `invalid signer key: ${(err as Error).message}`);
  }
  if (!ok) throw new EnvelopeError("bad_signature", `signature does not verify for key ${key}`);
  let json: unknown;
  try {
    json = JSON.parse(dec.decode(bytes));
  } catch (err) {
    throw new EnvelopeError("invalid_spec", `spec is not JSON: ${(err as Error).message}`);
  }
  try {
    return { spec: parseSpec(json), bytes, key };
  } catch (err) {
    throw new EnvelopeError("invalid_spec", (err as Error).message);
  }
}
