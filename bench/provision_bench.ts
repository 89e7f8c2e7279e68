// Enrolments per minute against one provisioner (issue 5; target ≥ 10,000/min).
// Each enrolment: GET /v1/nonce, POST /v1/enroll (token signature + expiry + use count,
// proof of possession with a single-use nonce, user JWT minted and signed, token and node
// records compare-and-set in NATS KV, audit record MAC-chained under the file lock).
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import {
  addAccount,
  initOperator,
  issueToken,
  operatorConfigLines,
  serveProvisioner,
} from "../provisioner/mod.ts";

const home = await Deno.makeTempDir({ prefix: "mr-bench-home-" });
await initOperator(home);
const srv = await startNatsServer({ config: await operatorConfigLines(home) });
await addAccount(home, "acme", { server: srv.url });
// one client address makes every request here: lift the per-client rate limit
const prov = await serveProvisioner({ home, servers: [srv.url], ratePerMinute: 1e9 });
const url = `http://127.0.0.1:${prov.addr.port}`;
const N = Number(Deno.env.get("N") ?? 3000);
const { token } = await issueToken(home, {
  server: srv.url,
  customer: "acme",
  site: "s1",
  provisioner: url,
  ttlMs: 3600_000,
  maxNodes: N + 100,
});
const enc = new TextEncoder();
const b64url = (b: Uint8Array) =>
  btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

// node keys made with WebCrypto (nkeys' pure-JS key derivation takes ~16 ms per key and
// would measure this client, not the provisioner)
function crc16(data: Uint8Array): number {
  let crc = 0;
  for (const b of data) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}
function base32(data: Uint8Array): string {
  const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let out = "", bits = 0, value = 0;
  for (const b of data) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += A[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += A[(value << (5 - bits)) & 31];
  return out;
}
async function nodeKey(): Promise<{ pub: string; sign: (d: Uint8Array) => Promise<Uint8Array> }> {
  const k = await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", k.publicKey));
  const body = new Uint8Array(33);
  body[0] = 20 << 3; // prefix "U"
  body.set(raw, 1);
  const crc = crc16(body);
  const full = new Uint8Array(35);
  full.set(body);
  full[33] = crc & 0xff;
  full[34] = crc >> 8;
  return {
    pub: base32(full),
    sign: async (d) =>
      new Uint8Array(
        await crypto.subtle.sign("Ed25519", k.privateKey, d as Uint8Array<ArrayBuffer>),
      ),
  };
}

async function enrol(i: number): Promise<void> {
  const kp = await nodeKey();
  const { nonce } = await (await fetch(`${url}/v1/nonce`)).json();
  const r = await fetch(`${url}/v1/enroll`, {
    method: "POST",
    body: JSON.stringify({
      token,
      public_key: kp.pub,
      nonce,
      signature: b64url(await kp.sign(enc.encode(nonce))),
      node: `n${i}`,
    }),
  });
  if (!r.ok) {
    console.error(
      (await Deno.readTextFile(home + "/audit.log")).trim().split("\n").slice(-2).join("\n"),
    );
    throw new Error(`enrol ${i}: ${r.status} ${await r.text()}`);
  }
  await r.body?.cancel();
}

const CONC = 16;
const t0 = performance.now();
let next = 0;
await Promise.all(Array.from({ length: CONC }, async () => {
  while (next < N) await enrol(next++);
}));
const s = (performance.now() - t0) / 1000;
console.log(
  `provisioning: ${N} enrolments in ${s.toFixed(2)} s = ${
    Math.round(N / s * 60)
  } enrolments/min (${CONC} concurrent clients; target ≥ 10,000/min)`,
);
globalThis.addEventListener("unload", () => {
  prov.shutdown().finally(() => srv[Symbol.asyncDispose]());
  Deno.removeSync(home, { recursive: true });
});
Deno.bench("provisioning - one enrolment", { n: 20 }, async () => {
  await enrol(1_000_000 + Math.floor(Math.random() * 1e9));
});
