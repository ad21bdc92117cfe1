/**
 * Log records: one line per change, stating the change's result so that replaying a record twice
 * (or over a state that already has it) changes nothing.
 *
 *   <crc32 of payload, 8 hex digits> <payload>\n
 *
 *   payload                                   meaning after replay
 *   S \t "key" \t value                        key holds value, no TTL
 *   T \t "key" \t expiresAt \t value           key holds value until expiresAt (ms since the epoch);
 *                                              keys already past it go when the replay ends (a later
 *                                              record may still refer to them, as PERSIST does)
 *   D \t "key"                                 key is gone
 *   N \t "namespace"                           the namespace and its subtree are gone ("" = all)
 *   M \t [["key",value],...]                   every entry holds its value, no TTL (one MSET: the
 *                                              line is whole or it is not replayed at all)
 *   E \t "key" \t expiresAt                    key (if present) expires at expiresAt
 *   P \t "key"                                 key (if present) has no TTL
 *
 * Keys are JSON strings (so any key, including a lone surrogate, round-trips); values are the
 * store's JSON text as is (JSON.stringify never writes a raw newline, so a line is one record).
 * The checksum covers the payload's UTF-8 bytes: a torn or damaged line never replays.
 */
import type { Journal } from '../memory.js';
import type { JsonText } from '../store.js';

/** Where decoded records go: the in-memory engine when replaying, nothing when checking. */
export type RecordSink = Journal;

const HEX = '0123456789abcdef';
const HEX2: string[] = Array.from({ length: 256 }, (_, b) => HEX[b >>> 4]! + HEX[b & 15]!);

function hex8(n: number): string {
  return HEX2[n >>> 24]! + HEX2[(n >>> 16) & 255]! + HEX2[(n >>> 8) & 255]! + HEX2[n & 255]!;
}

/** A payload framed as a log line: checksum, space, payload, newline. */
export function frame(payload: string): string {
  return `${hex8(crcOfString(payload))} ${payload}\n`;
}

/** A key as a JSON string; most keys need no escape, and quoting them is ~5x cheaper. */
function key(k: string): string {
  return needsEscape(k) ? JSON.stringify(k) : `"${k}"`;
}

export function setRecord(k: string, value: JsonText, expiresAt: number | undefined): string {
  return frame(expiresAt === undefined ? `S\t${key(k)}\t${value}` : `T\t${key(k)}\t${expiresAt}\t${value}`);
}

export function delRecord(k: string): string {
  return frame(`D\t${key(k)}`);
}

export function dropRecord(namespace: string): string {
  return frame(`N\t${key(namespace)}`);
}

export function msetRecord(entries: readonly (readonly [string, JsonText])[]): string {
  let body = '';
  for (const [k, value] of entries) body += `${body === '' ? '' : ','}[${key(k)},${value}]`;
  return frame(`M\t[${body}]`);
}

export function expireRecord(k: string, expiresAt: number): string {
  return frame(`E\t${key(k)}\t${expiresAt}`);
}

export function persistRecord(k: string): string {
  return frame(`P\t${key(k)}`);
}

// CRC-32 (IEEE, the same as zlib.crc32) over a range of a buffer: zlib's needs a Buffer view per
// line, and the view plus the native call cost ~190 ns a line against ~105 ns for this loop
// (1M lines: ~85 ms of a ~1.9 s replay).
const CRC_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[n] = c;
}
// Slicing: T1..T7 are the table advanced by 1..7 bytes, so one step folds in four (or eight) bytes
// with independent lookups; eight at a time took the SET record encoder from ~145 to ~125 ns.
const [T1, T2, T3, T4, T5, T6, T7] = Array.from({ length: 7 }, () => new Int32Array(256)) as [
  Int32Array,
  Int32Array,
  Int32Array,
  Int32Array,
  Int32Array,
  Int32Array,
  Int32Array,
];
{
  const tables = [CRC_TABLE, T1, T2, T3, T4, T5, T6, T7];
  for (let t = 1; t < 8; t++) {
    for (let n = 0; n < 256; n++) {
      const prev = tables[t - 1]![n]!;
      tables[t]![n] = (prev >>> 8) ^ CRC_TABLE[prev & 0xff]!;
    }
  }
}

function step4(c: number, word: number): number {
  const x = c ^ word;
  return T3[x & 0xff]! ^ T2[(x >>> 8) & 0xff]! ^ T1[(x >>> 16) & 0xff]! ^ CRC_TABLE[x >>> 24]!;
}

/** Eight bytes: `lo` (bytes 0-3, little-endian) meets the CRC; bytes 4-7 are looked up as they are. */
function step8(c: number, lo: number, b4: number, b5: number, b6: number, b7: number): number {
  const x = c ^ lo;
  return (
    T7[x & 0xff]! ^
    T6[(x >>> 8) & 0xff]! ^
    T5[(x >>> 16) & 0xff]! ^
    T4[x >>> 24]! ^
    T3[b4]! ^
    T2[b5]! ^
    T1[b6]! ^
    CRC_TABLE[b7]!
  );
}

export function crcOf(buf: Buffer, start: number, end: number): number {
  let c = -1;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    c = step8(
      c,
      buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24),
      buf[i + 4]!,
      buf[i + 5]!,
      buf[i + 6]!,
      buf[i + 7]!,
    );
  }
  for (; i < end; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/**
 * CRC-32 of a string's UTF-8 bytes (what zlib.crc32(string) computes), encoding as it goes: on the
 * write path zlib's took ~450 ns a record (a native call that first encodes the string), this
 * ~100 ns; it was 5% of the server's CPU under a SET load. Lone surrogates count as U+FFFD, as
 * Buffer.from writes them (JSON.stringify escapes them, so records never hold one).
 */
export function crcOfString(text: string): number {
  const t = CRC_TABLE;
  let c = -1;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    let u = text.charCodeAt(i);
    if (i + 4 <= n) {
      const u1 = text.charCodeAt(i + 1);
      const u2 = text.charCodeAt(i + 2);
      const u3 = text.charCodeAt(i + 3);
      if ((u | u1 | u2 | u3) < 0x80) {
        c = step4(c, u | (u1 << 8) | (u2 << 16) | (u3 << 24));
        i += 3;
        continue;
      }
    }
    if (u < 0x80) {
      c = t[(c ^ u) & 0xff]! ^ (c >>> 8);
      continue;
    }
    if (u < 0x800) {
      c = t[(c ^ (0xc0 | (u >> 6))) & 0xff]! ^ (c >>> 8);
    } else {
      if (u >= 0xd800 && u <= 0xdfff) {
        const next = text.charCodeAt(i + 1);
        if (u <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          u = 0x10000 + ((u - 0xd800) << 10) + (next - 0xdc00);
          i++;
          c = t[(c ^ (0xf0 | (u >> 18))) & 0xff]! ^ (c >>> 8);
          c = t[(c ^ (0x80 | ((u >> 12) & 0x3f))) & 0xff]! ^ (c >>> 8);
          c = t[(c ^ (0x80 | ((u >> 6) & 0x3f))) & 0xff]! ^ (c >>> 8);
          c = t[(c ^ (0x80 | (u & 0x3f))) & 0xff]! ^ (c >>> 8);
          continue;
        }
        u = 0xfffd;
      }
      c = t[(c ^ (0xe0 | (u >> 12))) & 0xff]! ^ (c >>> 8);
      c = t[(c ^ (0x80 | ((u >> 6) & 0x3f))) & 0xff]! ^ (c >>> 8);
    }
    c = t[(c ^ (0x80 | (u & 0x3f))) & 0xff]! ^ (c >>> 8);
  }
  return (c ^ -1) >>> 0;
}

const SPACE = 0x20;
const NEWLINE = 0x0a;

/** A key needs JSON escaping (then it is encoded with JSON.stringify, allocating). */
function needsEscape(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return true;
  }
  return false;
}

// The SET encoder copies and checksums in one pass: the CRC state of the bytes written so far
// lives here between the helpers (a record is written by one call of writeSetRecord, never
// interleaved). Copying and then checksumming the copy cost ~15% more on the hot path.
let crcState = -1;

function putByte(buf: Buffer, p: number, b: number): number {
  buf[p] = b;
  crcState = CRC_TABLE[(crcState ^ b) & 0xff]! ^ (crcState >>> 8);
  return p + 1;
}

/**
 * Writes `text` as UTF-8 at `p` and folds its bytes into the CRC; returns the end. ASCII eight
 * units at a time in JS (cheaper than a native call for short text); the rest natively, then
 * checksummed from the buffer. With `asKey`, returns -1 instead at the first unit a JSON string
 * must escape (control, quote, backslash, surrogate): the caller then writes JSON.stringify(text).
 */
function putText(buf: Buffer, p: number, text: string, asKey: boolean): number {
  const n = text.length;
  let c = crcState;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const a0 = text.charCodeAt(i);
    const a1 = text.charCodeAt(i + 1);
    const a2 = text.charCodeAt(i + 2);
    const a3 = text.charCodeAt(i + 3);
    const a4 = text.charCodeAt(i + 4);
    const a5 = text.charCodeAt(i + 5);
    const a6 = text.charCodeAt(i + 6);
    const a7 = text.charCodeAt(i + 7);
    if ((a0 | a1 | a2 | a3 | a4 | a5 | a6 | a7) >= 0x80) break;
    if (
      asKey &&
      (escapes(a0) ||
        escapes(a1) ||
        escapes(a2) ||
        escapes(a3) ||
        escapes(a4) ||
        escapes(a5) ||
        escapes(a6) ||
        escapes(a7))
    ) {
      return -1;
    }
    buf[p] = a0;
    buf[p + 1] = a1;
    buf[p + 2] = a2;
    buf[p + 3] = a3;
    buf[p + 4] = a4;
    buf[p + 5] = a5;
    buf[p + 6] = a6;
    buf[p + 7] = a7;
    p += 8;
    c = step8(c, a0 | (a1 << 8) | (a2 << 16) | (a3 << 24), a4, a5, a6, a7);
  }
  for (; i < n; i++) {
    const a = text.charCodeAt(i);
    if (a >= 0x80) {
      if (asKey && needsEscape(text)) return -1;
      const end = p + buf.write(i === 0 ? text : text.slice(i), p, 'utf8');
      for (; p < end; p++) c = CRC_TABLE[(c ^ buf[p]!) & 0xff]! ^ (c >>> 8);
      break;
    }
    if (asKey && escapes(a)) return -1;
    buf[p++] = a;
    c = CRC_TABLE[(c ^ a) & 0xff]! ^ (c >>> 8);
  }
  crcState = c;
  return p;
}

/** An ASCII unit a JSON string escapes. */
function escapes(c: number): boolean {
  return c < 0x20 || c === 0x22 || c === 0x5c;
}

const HEX_BYTES = Uint8Array.from(HEX, (ch) => ch.charCodeAt(0));

/**
 * Writes the SET/T record of one key straight into `buf` at `at` (the hot path of every SET, and
 * a snapshot's hot loop: no string per record, so a rewrite of millions of keys makes almost no
 * garbage for the GC). Returns the offset after the record, or -1 when it does not fit (nothing
 * usable written).
 */
export function writeSetRecord(
  buf: Buffer,
  at: number,
  k: string,
  value: JsonText,
  expiresAt: number | undefined,
): number {
  // Worst case UTF-8: 3 bytes per UTF-16 unit (escaped keys are ASCII, 6 bytes per unit at most).
  if (at + 9 + 2 + 6 * k.length + 4 + 24 + 3 * value.length + 1 > buf.length) return -1;
  crcState = -1;
  let p = putByte(buf, at + 9, expiresAt === undefined ? 0x53 : 0x54); // S | T
  p = putByte(buf, p, 0x09);
  const keyAt = p;
  const keyCrc = crcState;
  p = putText(buf, putByte(buf, p, 0x22), k, true);
  if (p === -1) {
    crcState = keyCrc;
    p = putText(buf, keyAt, JSON.stringify(k), false);
  } else {
    p = putByte(buf, p, 0x22);
  }
  p = putByte(buf, p, 0x09);
  if (expiresAt !== undefined) {
    p = putText(buf, p, String(expiresAt), false);
    p = putByte(buf, p, 0x09);
  }
  p = putText(buf, p, value, false);
  const crc = (crcState ^ -1) >>> 0;
  for (let i = 0; i < 8; i++) buf[at + i] = HEX_BYTES[(crc >>> (28 - 4 * i)) & 15]!;
  buf[at + 8] = SPACE;
  buf[p++] = NEWLINE;
  return p;
}

/** Where records go: the log writer (SET records, most of them, are written into its buffer). */
export interface RecordOutput {
  append(line: string): void;
  appendSet(key: string, value: JsonText, expiresAt: number | undefined): void;
}

/** A Journal that turns each change into its record. */
export function recordJournal(out: RecordOutput): Journal {
  const append = (line: string): void => out.append(line);
  return {
    set: (k, value, expiresAt) => out.appendSet(k, value, expiresAt),
    del: (k) => append(delRecord(k)),
    drop: (namespace) => append(dropRecord(namespace)),
    mset: (entries) => append(msetRecord(entries)),
    expire: (k, expiresAt) => append(expireRecord(k, expiresAt)),
    persist: (k) => append(persistRecord(k)),
  };
}

/** Thrown by `decode` for a payload that has a valid checksum but no valid meaning. */
export class RecordError extends Error {}

function jsonString(text: string): string {
  // Most keys need no escapes: then the JSON string is the key in quotes.
  if (text.length >= 2 && text.charCodeAt(0) === 0x22 && text.charCodeAt(text.length - 1) === 0x22) {
    const inner = text.slice(1, -1);
    if (!inner.includes('\\') && !inner.includes('"')) return inner;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RecordError(`not a JSON string: ${text.slice(0, 40)}`);
  }
  if (typeof parsed !== 'string') throw new RecordError(`not a JSON string: ${text.slice(0, 40)}`);
  return parsed;
}

function time(text: string): number {
  const n = Number(text);
  if (text === '' || !Number.isFinite(n)) throw new RecordError(`not a time: ${text.slice(0, 40)}`);
  return n;
}

/** The position of the `n`th tab after `from`, or a RecordError. */
function tab(payload: string, from: number): number {
  const at = payload.indexOf('\t', from);
  if (at === -1) throw new RecordError('record has too few fields');
  return at;
}

function noTab(field: string): string {
  if (field.includes('\t')) throw new RecordError('record has too many fields');
  return field;
}

/** Hands the change a payload states to `sink`; throws RecordError when it states none. */
export function decode(payload: string, sink: RecordSink): void {
  if (payload.length < 3 || payload.charCodeAt(1) !== 0x09) throw new RecordError('record has no type');
  const op = payload[0];
  switch (op) {
    case 'S': {
      const end = tab(payload, 2);
      sink.set(jsonString(payload.slice(2, end)), value(payload.slice(end + 1)), undefined);
      return;
    }
    case 'T': {
      const keyEnd = tab(payload, 2);
      const timeEnd = tab(payload, keyEnd + 1);
      sink.set(
        jsonString(payload.slice(2, keyEnd)),
        value(payload.slice(timeEnd + 1)),
        time(payload.slice(keyEnd + 1, timeEnd)),
      );
      return;
    }
    case 'D':
      sink.del(jsonString(noTab(payload.slice(2))));
      return;
    case 'N':
      sink.drop(jsonString(noTab(payload.slice(2))));
      return;
    case 'E': {
      const end = tab(payload, 2);
      sink.expire(jsonString(payload.slice(2, end)), time(noTab(payload.slice(end + 1))));
      return;
    }
    case 'P':
      sink.persist(jsonString(noTab(payload.slice(2))));
      return;
    case 'M': {
      sink.mset(msetEntries(payload.slice(2)));
      return;
    }
    default:
      throw new RecordError(`unknown record type ${JSON.stringify(op)}`);
  }
}

const TAB = 0x09;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The index of the next tab in buf[from, end), or -1. */
function tabIn(buf: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) if (buf[i] === TAB) return i;
  return -1;
}

/** A quoted key with no escapes in buf[start, end), decoded without a string for the whole line; else undefined. */
function plainKey(buf: Buffer, start: number, end: number): string | undefined {
  if (end - start < 2 || buf[start] !== QUOTE || buf[end - 1] !== QUOTE) return undefined;
  for (let i = start + 1; i < end - 1; i++) {
    const b = buf[i]!;
    if (b === BACKSLASH || b === QUOTE) return undefined;
  }
  return buf.toString('utf8', start + 1, end - 1);
}

/**
 * `decode` for a payload in buf[start, end): S and T records (nearly every record of a snapshot)
 * are decoded field by field, so the key and the value are strings of their own. Slices of one
 * string per line would keep the whole line alive behind every key and value (~60 bytes a key,
 * and more for the GC to copy during a replay).
 */
export function decodeBytes(buf: Buffer, start: number, end: number, sink: RecordSink): void {
  const op = buf[start];
  if ((op === 0x53 || op === 0x54) && buf[start + 1] === TAB) {
    const keyEnd = tabIn(buf, start + 2, end);
    const k = keyEnd === -1 ? undefined : plainKey(buf, start + 2, keyEnd);
    if (k !== undefined) {
      if (op === 0x53) {
        if (keyEnd + 1 < end) {
          sink.set(k, buf.toString('utf8', keyEnd + 1, end), undefined);
          return;
        }
      } else {
        const timeEnd = tabIn(buf, keyEnd + 1, end);
        if (timeEnd !== -1 && timeEnd + 1 < end) {
          sink.set(k, buf.toString('utf8', timeEnd + 1, end), timeIn(buf, keyEnd + 1, timeEnd));
          return;
        }
      }
    }
  }
  decode(buf.toString('utf8', start, end), sink);
}

/** The time in buf[start, end): digits read in place (no string per record), else as `time` reads it. */
function timeIn(buf: Buffer, start: number, end: number): number {
  if (end > start && end - start <= 15) {
    let n = 0;
    let i = start;
    for (; i < end; i++) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) break;
      n = n * 10 + d;
    }
    if (i === end) return n;
  }
  return time(buf.toString('latin1', start, end));
}

function value(text: string): JsonText {
  if (text === '') throw new RecordError('record has an empty value');
  return text;
}

function msetEntries(text: string): [string, JsonText][] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RecordError('MSET record is not JSON');
  }
  if (!Array.isArray(parsed)) throw new RecordError('MSET record is not a list');
  return parsed.map((entry: unknown) => {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string') {
      throw new RecordError('MSET record entry is not [key, value]');
    }
    // JSON.stringify(JSON.parse(t)) === t for any t that JSON.stringify wrote, so the stored text
    // is the text that was logged.
    return [entry[0], JSON.stringify(entry[1])];
  });
}
