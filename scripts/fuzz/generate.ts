import { ACTIONS, LIMITS } from '../../src/protocol/schema.js';
import type { Rng } from '../harness.js';

/** The fuzz server's line limit: small enough that over-long lines are cheap to send. */
export const FUZZ_MAX_LINE_BYTES = 64 * 1024;
export const MAX_DEPTH = LIMITS.defaultMaxDepth;

// ---------------------------------------------------------------------------------------------
// Generation

/** A request under construction: field name -> JSON text (text, so 1e400 or NaN can be written). */
type Fields = [string, string][];

const ACTION_NAMES = Object.keys(ACTIONS);
// No `y`: a generated string can never spell `canary`, so the canaries stay out of reach.
const ALPHABET = 'abcdefghijklmnopqrstuvwxz0123456789_-^ .é😀\u0000\u001f"\\/\u2028\uFEFF';

const ALPHABET_CHARS = [...ALPHABET];

function str(rng: Rng, max = 12): string {
  let s = '';
  const n = rng.int(0, max);
  for (let i = 0; i < n; i++) s += rng.pick(ALPHABET_CHARS);
  return s;
}

function key(rng: Rng): string {
  switch (rng.int(0, 9)) {
    case 0:
      return rng.pick(['a^^b', '^', '', 'a^', '^^', 'fz^\u0000', '😀^é', 'fz^ ^x']);
    case 1:
      return `fz^${'d^'.repeat(rng.int(1, 300))}x`;
    case 2:
      return `fz^${'k'.repeat(rng.int(100, 5000))}`;
    case 3:
      return `^fz^${rng.pick(['a', 'b'])}^${rng.int(0, 30)}`;
    case 4:
      return `fz${str(rng, 6).replace(/\^/g, '')}`;
    default:
      return `fz^${rng.pick(['a', 'b', 'c'])}^${rng.int(0, 30)}`;
  }
}

function namespace(rng: Rng): string {
  return rng.chance(0.85)
    ? rng.pick(['fz', 'fz^a', 'fz^b', 'fz^c', 'fz^a^x', '^fz^b', 'fzn'])
    : rng.pick(['', '^', 'a^^b', `fz^${'n'.repeat(rng.int(1, 3000))}`, 'fz^\u0000']);
}

function jsonValue(rng: Rng, depth = 0): unknown {
  const roll = rng.int(0, depth > 3 ? 5 : 8);
  switch (roll) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -0, 1, -1, 1.5, 1e308, -1e308, 5e-324, 2 ** 53, 2 ** 53 + 2, rng.int(-1000, 1000)]);
    case 3:
    case 4:
      return str(rng, 20);
    case 5:
      return rng.int(-1e6, 1e6);
    case 6:
      return Array.from({ length: rng.int(0, 5) }, () => jsonValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(0, 5); i > 0; i--) o[str(rng, 6)] = jsonValue(rng, depth + 1);
      return o;
    }
  }
}

export const j = (v: unknown): string => JSON.stringify(v);

/** Channel and key patterns: mostly in the fuzz space, some malformed, some server-only. */
function pattern(rng: Rng): string {
  return rng.chance(0.8)
    ? rng.pick(['fz^ch^*', 'fz^ch^>', 'fz^ch^1', 'fz^>', 'fz^a^*', '^fz^b^>', 'fz^*^1'])
    : rng.pick(['>', '*', '$sys^>', '$sys^shutdown', 'fz^>^a', 'fz^^x', '', '^', str(rng, 8)]);
}

function ttl(rng: Rng): string {
  return j(rng.pick([1, 5, 50, 1000, 60_000, LIMITS.maxTtlMs]));
}

/** A valid request of a random action (valid by construction, before any mutation). */
function validFields(rng: Rng): Fields {
  const action = rng.pick(ACTION_NAMES);
  const f: Fields = [['action', j(action)]];
  const withNs = () => {
    if (rng.chance(0.2)) f.push(['namespace', j(rng.pick(['fz', 'fz^a', 'fz^b']))]);
  };
  switch (action) {
    case 'ECHO':
      f.push(['value', j(jsonValue(rng))]);
      break;
    case 'SET':
      withNs();
      f.push(['key', j(key(rng))], ['value', j(jsonValue(rng))]);
      if (rng.chance(0.2)) f.push(['ttl', ttl(rng)]);
      if (rng.chance(0.1)) f.push([rng.pick(['ifAbsent', 'ifPresent']), j(rng.chance(0.5))]);
      break;
    case 'GET':
    case 'DEL':
    case 'EXISTS':
    case 'TTL':
    case 'PERSIST':
      withNs();
      f.push(['key', j(key(rng))]);
      break;
    case 'INCR':
      withNs();
      f.push(['key', j(key(rng))]);
      if (rng.chance(0.5)) f.push(['by', j(rng.pick([1, -1, 1000, LIMITS.maxSafeInteger, -7]))]);
      break;
    case 'CAS':
      withNs();
      f.push(['key', j(key(rng))], ['expected', j(jsonValue(rng))], ['value', j(jsonValue(rng))]);
      break;
    case 'MGET':
      withNs();
      f.push(['keys', j(Array.from({ length: rng.int(1, 20) }, () => key(rng)))]);
      break;
    case 'MSET': {
      withNs();
      const entries: Record<string, unknown> = {};
      for (let i = rng.int(1, 10); i > 0; i--) entries[key(rng)] = jsonValue(rng);
      f.push(['entries', j(entries)]);
      break;
    }
    case 'KEYS':
    case 'NAMESPACES':
      if (rng.chance(0.7)) f.push(['namespace', j(namespace(rng))]);
      if (rng.chance(0.3)) f.push(['after', j(str(rng, 4))]);
      if (rng.chance(0.5)) f.push(['limit', j(rng.int(1, 300))]);
      break;
    case 'COUNT':
      if (rng.chance(0.7)) f.push(['namespace', j(namespace(rng))]);
      break;
    case 'DROP':
      f.push(['namespace', j(namespace(rng))]);
      break;
    case 'EXPIRE':
      withNs();
      f.push(['key', j(key(rng))], ['ttl', ttl(rng)]);
      break;
    case 'SUBSCRIBE':
    case 'UNSUBSCRIBE':
      if (action === 'SUBSCRIBE' || rng.chance(0.7)) {
        f.push(['channels', j(Array.from({ length: rng.int(1, 4) }, () => pattern(rng)))]);
      }
      break;
    case 'OBSERVE':
    case 'UNOBSERVE':
      if (action === 'OBSERVE' || rng.chance(0.7)) {
        f.push(['keys', j(Array.from({ length: rng.int(1, 4) }, () => pattern(rng)))]);
      }
      break;
    case 'PUBLISH':
      f.push(
        ['channel', j(rng.chance(0.9) ? `fz^ch^${rng.int(0, 3)}` : pattern(rng))],
        ['message', j(jsonValue(rng))],
      );
      break;
    default:
      break;
  }
  if (rng.chance(0.5)) f.push(['id', anyId(rng, 0.9)]);
  return f;
}

/** Ids of every type: mostly valid ones (string, number), then everything an id must not be. */
function anyId(rng: Rng, validShare: number): string {
  if (rng.chance(validShare)) {
    return rng.pick([
      j(rng.int(0, 1e9)),
      j(str(rng, 10)),
      j(-rng.int(1, 1000)),
      '1.25',
      '-0',
      '1e21',
      j(''),
      j('x'.repeat(LIMITS.maxIdLength)),
    ]);
  }
  return rng.pick([
    'null',
    'true',
    '{}',
    '[1]',
    '1e400',
    '-1e400',
    j('x'.repeat(LIMITS.maxIdLength + 1)),
    '{"__proto__":1}',
    'NaN',
  ]);
}

const NUMBER_EDGES = [
  '1e400',
  '-1e400',
  '-0',
  '0',
  '1e308',
  '-1',
  '1.5',
  '9007199254740993',
  '-9007199254740992',
  '1e-400',
  'NaN',
  'Infinity',
  '0x10',
  '01',
  '.5',
  '+1',
  '1e21',
  '123456789012345678901234567890',
];

function nested(rng: Rng, depth: number): string {
  const obj = rng.chance(0.5);
  if (depth > 5000) return '['.repeat(depth); // unterminated: the depth check must come first
  return obj ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` : `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

const WEIRD_STRINGS = [
  '"\\ud800"',
  '"\\udfff\\ud800"',
  '"\\u0000"',
  j('\u202e\u0301\u200b'),
  j('😀'.repeat(50)),
  '"\uFEFF"',
  '"\\"',
  '"\t"',
  j('caf\u00e9'),
  '"\\x41"',
];

/** One structure-level mutation, in place. */
function mutateFields(rng: Rng, f: Fields): void {
  const at = () => rng.int(0, Math.max(0, f.length - 1));
  switch (rng.int(0, 12)) {
    case 0:
      if (f.length > 0) f.splice(at(), 1);
      break;
    case 1: {
      if (f.length < 2) break;
      const a = at();
      const b = at();
      const va = f[a]![1];
      f[a]![1] = f[b]![1];
      f[b]![1] = va;
      break;
    }
    case 2:
      if (f.length > 0) f[at()]![1] = j(jsonValue(rng));
      break;
    case 3:
      if (f.length > 0) f[at()]![1] = rng.pick(NUMBER_EDGES);
      break;
    case 4: {
      const depth = rng.pick([MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 1000, 100_000]);
      f.push(['value', nested(rng, depth)]);
      break;
    }
    case 5:
      if (f.length > 0) f[at()]![1] = j('s'.repeat(rng.pick([1000, 20_000, FUZZ_MAX_LINE_BYTES + 10])));
      break;
    case 6:
      if (f.length > 0) f[at()]![1] = rng.pick(WEIRD_STRINGS);
      break;
    case 7: {
      const name = rng.pick(['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']);
      const value = rng.pick(['{"polluted":true}', '{"prototype":{"polluted":true}}', '1', 'null']);
      if (rng.chance(0.5)) f.push([name, value]);
      else f.push(['value', `{${j(name)}:${value}}`]);
      break;
    }
    case 8: {
      const action = f.find(([k]) => k === 'action');
      if (!action) break;
      let name: unknown;
      try {
        name = JSON.parse(action[1]);
      } catch {
        break; // an earlier mutation already broke it
      }
      if (typeof name !== 'string') break;
      action[1] = j(
        rng.pick([
          name.toLowerCase(),
          [...name].map((c) => (rng.chance(0.5) ? c.toLowerCase() : c)).join(''),
          ` ${name}`,
          `${name}\u0000`,
          name.replace(/S/g, '\u017f'),
          `${name}X`,
          '',
          name.repeat(20),
        ]),
      );
      break;
    }
    case 9:
      f.push([rng.pick(['extra', 'ttl', 'key', 'Key', 'ACTION', str(rng, 5)]), j(jsonValue(rng))]);
      break;
    case 10:
      if (f.length > 0) {
        const [k] = f[at()]!;
        f.push([k, j(jsonValue(rng))]);
      }
      break;
    case 11:
      f.push(['id', anyId(rng, 0.3)]);
      break;
    default:
      for (let i = f.length - 1; i > 0; i--) {
        const k = rng.int(0, i);
        const t = f[i]!;
        f[i] = f[k]!;
        f[k] = t;
      }
  }
}

function serialize(rng: Rng, f: Fields): string {
  const sep = rng.chance(0.1) ? rng.pick([' ', '\t', ' \r ']) : '';
  return `{${sep}${f.map(([k, v]) => `${j(k)}${sep}:${sep}${v}`).join(`,${sep}`)}${sep}}`;
}

const INVALID_UTF8 = [
  [0xc3, 0x28],
  [0xa0, 0xa1],
  [0xe2, 0x28, 0xa1],
  [0xed, 0xa0, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xff],
  [0xc0, 0xaf],
  [0xf4, 0x90, 0x80, 0x80],
];

/** One byte-level mutation. May introduce LF or CR, which the oracle frames like the server. */
function mutateBytes(rng: Rng, b: Buffer): Buffer {
  const pos = rng.int(0, b.length);
  switch (rng.int(0, 5)) {
    case 0:
      return b.subarray(0, pos);
    case 1:
      return Buffer.concat([
        b.subarray(0, pos),
        Buffer.from([rng.pick([0x00, 0xff, 0x0a, 0x0d, 0x22, 0x5c, 0x7b, 0x5b])]),
        b.subarray(pos),
      ]);
    case 2: {
      if (b.length === 0) return b;
      const c = Buffer.from(b);
      c[Math.min(pos, c.length - 1)]! ^= 1 << rng.int(0, 7);
      return c;
    }
    case 3: {
      const end = rng.int(pos, b.length);
      return Buffer.concat([b.subarray(0, end), b.subarray(pos, end), b.subarray(end)]);
    }
    case 4:
      return Buffer.concat([b.subarray(0, pos), Buffer.from(rng.pick(INVALID_UTF8)), b.subarray(pos)]);
    default:
      return Buffer.concat([Buffer.from(rng.pick(['\uFEFF', ' ', '\r', '\t'])), b]);
  }
}

/**
 * A valid ECHO padded to within a byte or two of the line limit, sometimes with a CR: the framer's
 * limit check runs on carried bytes across chunk splits, with one byte of slack for a split CRLF.
 */
function nearLimit(rng: Rng): Buffer {
  const cr = rng.chance(0.5);
  const target = FUZZ_MAX_LINE_BYTES + rng.int(-2, 2) + (cr ? 1 : 0);
  const head = '{"action":"ECHO","value":"';
  const tail = `"}${cr ? '\r' : ''}`;
  return Buffer.from(`${head}${'n'.repeat(Math.max(0, target - head.length - tail.length))}${tail}`);
}

function garbage(rng: Rng): Buffer {
  if (rng.chance(0.1)) return nearLimit(rng);
  switch (rng.int(0, 7)) {
    case 0: {
      const bytes = Buffer.alloc(rng.int(1, 400));
      for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(0, 255);
      return bytes;
    }
    case 1:
      return Buffer.from(
        rng.pick(['[1]', '"PING"', 'null', '42', 'true', '[]', '{}', '""', '-', '{"action"}']),
      );
    case 2:
      return Buffer.from('['.repeat(100_000));
    case 3:
      return Buffer.alloc(FUZZ_MAX_LINE_BYTES + rng.int(1, 20_000), 0x61);
    case 4:
      return Buffer.from(rng.pick(['', '\r', '   ', '\r\r']));
    case 5:
      return Buffer.from(j(jsonValue(rng)));
    case 6:
      return Buffer.from(str(rng, 40));
    default:
      return Buffer.from(`{"action":"${'A'.repeat(rng.int(30, 5000))}"}`);
  }
}

/** One frame (a line without its terminator, though it may contain stray LF/CR bytes). */
export function frame(rng: Rng): Buffer {
  const roll = rng.float();
  if (roll < 0.3) return Buffer.from(serialize(rng, validFields(rng)));
  if (roll < 0.8) {
    const f = validFields(rng);
    for (let i = rng.int(1, 3); i > 0; i--) mutateFields(rng, f);
    let b: Buffer = Buffer.from(serialize(rng, f));
    if (rng.chance(0.25)) b = mutateBytes(rng, b);
    return b;
  }
  return garbage(rng);
}
