/**
 * Proof of possession: the provisioner hands out single-use, expiring nonces and checks a
 * node's ed25519 signature over one with the node's user key.
 *
 * @module
 */
import { nkeyVerify } from "../src/util/ed25519.ts";
import { b64urlDecode } from "./tokens.ts";

const enc = new TextEncoder();

/** Nonces handed out by `GET /v1/nonce` and the proof check. */
export interface Proofs {
  /** A fresh nonce, valid for `ttlMs`. */
  issue(): Promise<string>;
  /** Consumes `nonce`: true once, for a nonce issued here and not expired. */
  take(nonce: string): Promise<boolean>;
  /** Whether `sig` is `userKey`'s signature over `nonce`. */
  verify(userKey: string, nonce: string, sig: string): Promise<boolean>;
}

/** In-process nonces (one provisioner). */
export function memoryProofs(o: { ttlMs?: number; now?: () => number } = {}): Proofs {
  const ttl = o.ttlMs ?? 60_000;
  const now = o.now ?? Date.now;
  const nonces = new Map<string, number>();
  return {
    issue() {
      const nonce = crypto.randomUUID();
      nonces.set(nonce, now() + ttl);
      if (nonces.size > 100_000) {
        for (const [k, v] of nonces) if (v < now()) nonces.delete(k);
      }
      return Promise.resolve(nonce);
    },
    take(nonce) {
      const exp = nonces.get(nonce);
      nonces.delete(nonce);
      return Promise.resolve(exp !== undefined && exp > now());
    },
    async verify(userKey, nonce, sig) {
      try {
        if (!userKey.startsWith("U")) return false;
        return await nkeyVerify(userKey, enc.encode(nonce), b64urlDecode(sig));
      } catch {
        return false;
      }
    },
  };
}
