/**
 * The vendor home dir (`--home D`): its config (`mr-saas.json`, schema below) and the
 * 0600 secret files in it. A leaf module: it imports nothing else from `provisioner/`.
 *
 * @module
 */
import { fromSeed, type KeyPair } from "@nats-io/nkeys";
import { join } from "node:path";
import { z } from "zod";
import { atomicWrite } from "../src/util/atomic_write.ts";

const enc = new TextEncoder();

/** Schema of `mr-saas.json`. */
export const HomeConfigSchema = z.object({
  /** Operator public key. */
  operator: z.string(),
  /** System account public key. */
  system_account: z.string(),
  /** Public key that signs provisioning tokens and enrolment responses. */
  provisioner_key: z.string(),
  /** NATS URL of the vendor's server (nodes get it unless `serve --server` says otherwise). */
  server: z.string(),
  /** Spec-signing public keys handed to new nodes. */
  spec_keys: z.array(z.string()),
  /** Public key of the vendor account holding the provisioning records (KV). */
  vendor_account: z.string().optional(),
  s3: z.record(z.string(), z.unknown()).optional(),
}).loose();

/** `mr-saas.json`. */
export type HomeConfig = z.infer<typeof HomeConfigSchema>;

/** Writes a secret file atomically, 0600. */
export async function writeSecret(path: string, data: string | Uint8Array): Promise<void> {
  await atomicWrite(path, data);
}

/** Reads an nkey seed file. */
export async function readSeed(path: string): Promise<KeyPair> {
  return fromSeed(enc.encode((await Deno.readTextFile(path)).trim()));
}

/** Reads and validates `mr-saas.json` of a home dir. */
export async function readHome(home: string): Promise<HomeConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(join(home, "mr-saas.json")));
  } catch (err) {
    throw new Error(
      `${home} is not a vendor home (run \`mr-saas operator init --home ${home}\`): ${
        (err as Error).message
      }`,
      { cause: err },
    );
  }
  const r = HomeConfigSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`${join(home, "mr-saas.json")}: ${i.path.join(".") || "(root)"}: ${i.message}`);
  }
  return r.data;
}

/** Writes `mr-saas.json` (validated first). */
export async function writeHome(home: string, cfg: HomeConfig): Promise<void> {
  const data = HomeConfigSchema.parse(cfg);
  await atomicWrite(join(home, "mr-saas.json"), JSON.stringify(data, null, 2) + "\n", {
    mode: 0o644,
  });
}
