/**
 * Node credentials: user JWTs minted with a customer account's signing key, limited to the
 * node's own subjects ({@linkcode nodePermissions}).
 *
 * @module
 */
import { fromSeed } from "@nats-io/nkeys";
import { join } from "node:path";
import { encodeUserJwt, nkeySigner } from "../src/util/ed25519.ts";
import { readSeed } from "./home.ts";
import { nodePermissions } from "./permissions.ts";

const enc = new TextEncoder();

/** A customer account's public key, its signing key and a WebCrypto signer for it. */
export interface CustomerSigner {
  account: string;
  signerKey: string;
  sign: (d: Uint8Array) => Promise<Uint8Array>;
}

/** Mints node user JWTs; one signer per customer, loaded once. */
export interface Minter {
  /** The customer's account and signing key (throws for an unknown customer). */
  signer(customer: string): Promise<CustomerSigner>;
  /** A user JWT named `<site>.<node>` for `userKey`, valid for the minter's lifetime. */
  mint(customer: string, site: string, node: string, userKey: string): Promise<string>;
}

/** Creates a {@linkcode Minter} reading the customers' keys from `home`. */
export function createMinter(
  home: string,
  options: { credsTtlMs: number; now?: () => number },
): Minter {
  const now = options.now ?? Date.now;
  const signers = new Map<string, Promise<CustomerSigner>>();
  const signer = (customer: string) => {
    let s = signers.get(customer);
    if (!s) {
      s = (async () => {
        const dir = join(home, "accounts", customer);
        const acct = await readSeed(join(dir, "account.nk"));
        const seed = (await Deno.readTextFile(join(dir, "signer.nk"))).trim();
        return {
          account: acct.getPublicKey(),
          signerKey: fromSeed(enc.encode(seed)).getPublicKey(),
          sign: await nkeySigner(seed),
        };
      })();
      s.catch(() => signers.delete(customer));
      signers.set(customer, s);
    }
    return s;
  };
  return {
    signer,
    async mint(customer, site, node, userKey) {
      const k = await signer(customer);
      // built and signed natively: @nats-io/jwt's pure-JS key handling costs ~50 ms per JWT
      return await encodeUserJwt({
        name: `${site}.${node}`,
        userKey,
        issuerAccount: k.account,
        signerKey: k.signerKey,
        sign: k.sign,
        permissions: nodePermissions(site, node),
        exp: Math.floor((now() + options.credsTtlMs) / 1000),
      });
    },
  };
}
