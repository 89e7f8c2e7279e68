/**
 * Proof of possession: `GET /v1/nonce` hands out a nonce that is MAC'd with the home's key
 * and carries its expiry, so any provisioner of the vendor can check it; a nonce is used
 * once across all of them (its id is created in `MR_PROV_NONCES`, a compare-and-set that
 * only the first taker wins). A node proves its key by signing the nonce.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { nkeyVerify } from "../src/util/ed25519.ts";
import type { Records } from "./records.ts";
import { b64urlDecode } from "./tokens.ts";

const enc = new TextEncoder();

/** Nonces handed out by `GET /v1/nonce` and the proof check. */
export interface Proofs {
  /** A fresh nonce. */
  issue(): string;
  /** Consumes `nonce`: true once, for a nonce issued by this vendor and not expired. */
  take(nonce: string): Promise<boolean>;
  /** Whether `sig` is `userKey`'s signature over `nonce`. */
  verify(userKey: string, nonce: string, sig: string): Promise<boolean>;
}

function b64url(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Options of {@linkcode createProofs}. */
export interface ProofsOptions {
  /** The home's MAC key. */
  key: Uint8Array;
  records: Records;
  /** How long a nonce may be used. @default {60_000} */
  ttlMs?: number;
  /** @default {Date.now} */
  now?: () => number;
}

/** Creates the nonce issuer and checker. */
export function createProofs(o: ProofsOptions): Proofs {
  const ttl = o.ttlMs ?? 60_000;
  const now = o.now ?? Date.now;
  const mac = (id: string, exp: string) =>
    createHmac("sha256", o.key).update(`mr-nonce.${id}.${exp}`).digest();
  return {
    issue() {
      const id = b64url(crypto.getRandomValues(new Uint8Array(18)));
      const exp = String(now() + ttl);
      return `${id}.${exp}.${b64url(mac(id, exp))}`;
    },
    async take(nonce) {
      const [id, exp, tag, ...rest] = nonce.split(".");
      if (!id || !exp || !tag || rest.length || !/^[A-Za-z0-9_-]{24}$/.test(id)) return false;
      let given: Uint8Array;
      try {
        given = b64urlDecode(tag);
      } catch {
        return false;
      }
      const want = mac(id, exp);
      if (given.length !== want.length || !timingSafeEqual(given, want)) return false;
      if (!(Number(exp) > now())) return false;
      return await o.records.create("nonces", id, { exp: Number(exp) });
    },
    async verify(userKey, nonce, sig) {
      try {
        if (!/^U[A-Z2-7]{55}$/.test(userKey)) return false;
        return await nkeyVerify(userKey, enc.encode(nonce), b64urlDecode(sig));
      } catch {
        return false;
      }
    },
  };
}
