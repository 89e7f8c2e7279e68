import { assert, assertEquals } from "@std/assert";
import { createUlidFactory, isUlid, ulidTime } from "./ulid.ts";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
// the straightforward BigInt encoding the fast path must equal
function reference(t: number, rand: Uint8Array): string {
  let time = "";
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  let bits = 0n;
  for (const b of rand) bits = (bits << 8n) | BigInt(b);
  let r = "";
  for (let i = 0; i < 16; i++) {
    r = ALPHABET[Number(bits & 31n)] + r;
    bits >>= 5n;
  }
  return time + r;
}

Deno.test("ulid - equals the reference encoding, sorts in creation order", () => {
  let clock = 1_700_000_000_000;
  const make = createUlidFactory({ now: () => clock });
  let prev = "";
  for (let i = 0; i < 2000; i++) {
    if (i % 7 === 0) clock += 1 + (i % 3);
    const id = make();
    assert(isUlid(id), id);
    assertEquals(ulidTime(id), clock);
    assert(id > prev, `${id} sorts after ${prev}`);
    prev = id;
  }
  // the random part decodes back to bytes that re-encode to the same string
  const id = make();
  const t = ulidTime(id);
  let bits = 0n;
  for (const ch of id.slice(10)) bits = (bits << 5n) | BigInt(ALPHABET.indexOf(ch));
  const bytes = new Uint8Array(10);
  for (let i = 9; i >= 0; i--) {
    bytes[i] = Number(bits & 255n);
    bits >>= 8n;
  }
  assertEquals(reference(t, bytes), id);
  // extremes
  assertEquals(reference(0, new Uint8Array(10).fill(255)).slice(10), "ZZZZZZZZZZZZZZZZ");
});
