/**
 * ULIDs (26-char Crockford base32, time-ordered) for CloudEvent ids and spool rows.
 * Monotonic within one millisecond so ids sort in creation order.
 *
 * @module
 */

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** Options for {@linkcode createUlidFactory}. */
export interface UlidOptions {
  /** Clock in ms. @default {Date.now} */
  now?: () => number;
}

/** Returns a function that makes monotonic ULIDs. */
export function createUlidFactory(options: UlidOptions = {}): () => string {
  const now = options.now ?? Date.now;
  let lastTime = -1;
  let lastPrefix = "";
  const lastRand = new Uint8Array(10);
  return () => {
    let t = now();
    if (t <= lastTime) {
      t = lastTime;
      // increment the 80-bit random part
      for (let i = 9; i >= 0; i--) {
        if (lastRand[i] === 255) {
          lastRand[i] = 0;
        } else {
          lastRand[i]!++;
          break;
        }
      }
    } else {
      lastTime = t;
      lastPrefix = encodeTime(t);
      crypto.getRandomValues(lastRand);
      lastRand[0]! &= 0x7f; // leave room to increment without overflow
    }
    return lastPrefix + encodeRandom(lastRand);
  };
}

function encodeTime(t: number): string {
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

/** 40 bits (5 bytes from `o`) → 8 base32 chars; plain numbers (2^40 is exact in a double). */
function encode40(bytes: Uint8Array, o: number): string {
  let v = bytes[o]! * 2 ** 32 + ((bytes[o + 1]! << 24) >>> 0) + (bytes[o + 2]! << 16) +
    (bytes[o + 3]! << 8) + bytes[o + 4]!;
  let out = "";
  for (let i = 0; i < 8; i++) {
    out = ALPHABET[v % 32] + out;
    v = Math.floor(v / 32);
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  // 80 bits → 16 base32 chars
  return encode40(bytes, 0) + encode40(bytes, 5);
}

/** The process-wide default factory. */
export const ulid: () => string = createUlidFactory();

/** True when `s` is a syntactically valid ULID. */
export function isUlid(s: string): boolean {
  return ULID_RE.test(s);
}

/** The millisecond timestamp encoded in a ULID. */
export function ulidTime(id: string): number {
  let t = 0;
  for (const ch of id.slice(0, 10)) t = t * 32 + ALPHABET.indexOf(ch);
  return t;
}
