/**
 * How caretkv keys and namespaces become Redis keys on a Redis Cluster (issue 16; the engine that
 * uses this layout is being built on top of it).
 *
 * Sharding: every Redis key that belongs to a top-level namespace T carries the hash tag `{T}`, so
 * T's values, its namespace indexes and its counters hash to one slot and one Lua script may touch
 * them all (MSET within T, DROP of T or below, the index updates of a SET). A top-level key (no
 * `^`) is its own T. Braces in T are escaped inside the tag (`%7B`, `%7D`, `%` as `%25`): Redis
 * takes the tag from the first `{` to the next `}`, so a raw `}` in T would cut the tag short and
 * a leading one would leave it empty (then Redis hashes the whole key, and T's keys would scatter).
 *
 * Bytes: names are sent as bytes in the "unit" encoding below, never as JavaScript strings through
 * the client's UTF-8 encoder, which turns a lone surrogate into U+FFFD (two keys would collide).
 *
 *   <prefix>{T}:v:<key>    the value: a string holding the JSON text; a TTL is Redis's own
 *   <prefix>{T}:k:<ns>     sorted set of the names of ns's own keys (all scores 0: ZRANGEBYLEX)
 *   <prefix>{T}:n:<ns>     sorted set of ns's child namespace names
 *   <prefix>{T}:c          hash: namespace -> keys in its whole subtree (COUNT)
 *
 * The root namespace ('') spans every slot: its listings cannot live in T's slot.
 */

/** The prefix of every Redis key the engine writes (several caretkv deployments may share a cluster). */
export const DEFAULT_PREFIX = 'ck:';

/**
 * A string's UTF-16 code units, each written as the UTF-8 form of its value (1-3 bytes; surrogates
 * as 3-byte sequences, as CESU-8 writes them). Redis orders members (ZRANGEBYLEX) and compares keys
 * by bytes; this encoding's byte order is the code-unit order caretkv's listings promise, which
 * UTF-8 is not (UTF-8 puts U+10000 and above after U+FFFF; UTF-16 puts their surrogates before
 * U+E000). It is also lossless for lone surrogates.
 */
export function encodeUnits(text: string): Buffer {
  const out = Buffer.allocUnsafe(3 * text.length);
  let p = 0;
  for (let i = 0; i < text.length; i++) {
    const u = text.charCodeAt(i);
    if (u < 0x80) {
      out[p++] = u;
    } else if (u < 0x800) {
      out[p++] = 0xc0 | (u >> 6);
      out[p++] = 0x80 | (u & 0x3f);
    } else {
      out[p++] = 0xe0 | (u >> 12);
      out[p++] = 0x80 | ((u >> 6) & 0x3f);
      out[p++] = 0x80 | (u & 0x3f);
    }
  }
  return out.subarray(0, p);
}

/** The inverse of encodeUnits; throws on bytes it never writes. */
export function decodeUnits(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    let u: number;
    if (b < 0x80) {
      u = b;
      i += 1;
    } else if (b >= 0xc2 && b < 0xe0 && continuation(bytes, i + 1)) {
      u = ((b & 0x1f) << 6) | (bytes[i + 1]! & 0x3f);
      i += 2;
    } else if (b >= 0xe0 && b < 0xf0 && continuation(bytes, i + 1) && continuation(bytes, i + 2)) {
      u = ((b & 0x0f) << 12) | ((bytes[i + 1]! & 0x3f) << 6) | (bytes[i + 2]! & 0x3f);
      if (u < 0x800) throw new Error(`overlong sequence at byte ${i}`);
      i += 3;
    } else {
      throw new Error(`not unit-encoded text at byte ${i}`);
    }
    out += String.fromCharCode(u);
  }
  return out;
}

function continuation(bytes: Uint8Array, i: number): boolean {
  return i < bytes.length && (bytes[i]! & 0xc0) === 0x80;
}

const SEPARATOR = '^';

/** The top-level namespace a key or namespace path belongs to (a top-level key is its own). */
export function topOf(path: string): string {
  const i = path.indexOf(SEPARATOR);
  return i === -1 ? path : path.slice(0, i);
}

/** T as it appears inside `{...}`: no brace can end the tag early, and distinct T stay distinct. */
export function escapeTag(top: string): string {
  return top.replace(/[%{}]/g, (c) => (c === '%' ? '%25' : c === '{' ? '%7B' : '%7D'));
}

/** Builds the Redis keys of one deployment (one prefix). */
export class KeyLayout {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {}

  /** `<prefix>{T}:` as bytes, for the T that `path` belongs to (scripts build T's keys from it). */
  headOf(path: string): Buffer {
    return encodeUnits(`${this.prefix}{${escapeTag(topOf(path))}}:`);
  }

  /** `<prefix>{T}:<kind>:` as bytes, for the T that `path` belongs to. */
  private head(path: string, kind: string): Buffer {
    return encodeUnits(`${this.prefix}{${escapeTag(topOf(path))}}:${kind}:`);
  }

  /** T's expiry index: a sorted set of T's keys with a TTL, scored by when they expire. */
  expiries(path: string): Buffer {
    const head = this.head(path, 'e');
    return head.subarray(0, head.length - 1);
  }

  /** The root namespace's key index, child index and key total (one slot of their own). */
  get rootKeys(): Buffer {
    return encodeUnits(`${this.prefix}root:k`);
  }
  get rootChildren(): Buffer {
    return encodeUnits(`${this.prefix}root:n`);
  }
  get rootCount(): Buffer {
    return encodeUnits(`${this.prefix}root:count`);
  }
  /** The channel every script publishes its changes on (one per deployment). */
  get events(): Buffer {
    return encodeUnits(`${this.prefix}events`);
  }
  /** How many keys expired so far (INFO's `expired`). */
  get rootExpired(): Buffer {
    return encodeUnits(`${this.prefix}root:expired`);
  }

  /** Where `key`'s value lives. */
  value(key: string): Buffer {
    return Buffer.concat([this.head(key, 'v'), encodeUnits(key)]);
  }

  /** The sorted set of the names of `namespace`'s own keys (`namespace` is not the root). */
  keyIndex(namespace: string): Buffer {
    return Buffer.concat([this.head(namespace, 'k'), encodeUnits(namespace)]);
  }

  /** The sorted set of `namespace`'s child namespace names (`namespace` is not the root). */
  childIndex(namespace: string): Buffer {
    return Buffer.concat([this.head(namespace, 'n'), encodeUnits(namespace)]);
  }

  /** The subtree key counters of the top-level namespace `path` belongs to. */
  counters(path: string): Buffer {
    const head = this.head(path, 'c');
    return head.subarray(0, head.length - 1); // no trailing ':'
  }
}

// CRC16-CCITT (XMODEM), the hash of Redis Cluster's key slots: slot = crc16(tag or key) mod 16384.
const CRC16 = new Uint16Array(256);
for (let n = 0; n < 256; n++) {
  let c = n << 8;
  for (let k = 0; k < 8; k++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1;
  CRC16[n] = c & 0xffff;
}

export function crc16(bytes: Uint8Array): number {
  let c = 0;
  for (const b of bytes) c = ((c << 8) ^ CRC16[((c >> 8) ^ b) & 0xff]!) & 0xffff;
  return c;
}

/** The cluster slot of a Redis key, by Redis's rule (the first non-empty `{...}` tag, else the whole key). */
export function slotOf(key: Uint8Array): number {
  const open = key.indexOf(0x7b);
  if (open !== -1) {
    const close = key.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(key.subarray(open + 1, close)) & 16383;
  }
  return crc16(key) & 16383;
}
