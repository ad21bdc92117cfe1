/**
 * Protocol fuzzer over real sockets.
 *
 *   npm run fuzz -- [--frames 200000] [--seconds 60] [--connections 32] [--seed N] [--churn 0]
 *
 * Frames are structure-aware mutations of valid requests (dropped / swapped / retyped fields,
 * huge, negative and non-finite numbers, deep nesting, long strings, unicode, NUL and invalid
 * UTF-8, `__proto__` / `constructor` keys, action case variants, unknown and duplicate fields,
 * ids of every type), byte-level damage to them (truncation, inserted/flipped bytes, stray
 * CR/LF), and raw garbage (random bytes, non-objects, 100000 `[`, lines over the limit). Each
 * session is one connection: a pipelined burst written in pieces split at random byte
 * boundaries (sometimes while not reading, so the server's output backs up and it stops reading),
 * then either a clean half-close (every response is read and checked) or an abrupt exit mid-frame
 * (destroy, or RST).
 *
 * Every response to a clean session is checked against an oracle: the same framing rules and the
 * codec's own `decode()`, run locally. A line the codec refuses must get exactly that error (code,
 * message, id); a line it accepts was dispatched and may only fail with the action's documented
 * codes (never INTERNAL). PING and ECHO answers are checked exactly.
 *
 * Afterwards, what must hold (see docs/reliability.md, "What must add up"):
 * - PING answers; the canary keys written before the run are intact.
 * - INFO accounting, as deltas between an INFO before and one after the run:
 *   clean[a] + 1(INFO itself, for a = INFO) <= commands.byAction[a] <= that + abrupt[a] for
 *   every action a, where clean[a] counts lines of clean sessions the oracle dispatched to a and
 *   abrupt[a] lines of abrupt sessions it would have (the server may have read them or not);
 *   errors.total lies between the error responses received and that plus the abrupt lines;
 *   errors.byCode.INTERNAL stays 0; connections.total grew by exactly the sessions opened and
 *   connections.current is back to 1 (the control connection).
 * - Memory: after the fuzz keys are dropped and a forced GC, heapUsed is within a bound of the
 *   baseline taken after the canaries were written.
 * - The server logged nothing at error level.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';
import { decode, RequestError } from '../src/protocol/codec.js';
import { ACTIONS, LIMITS } from '../src/protocol/schema.js';
import {
  type InfoSnapshot,
  info,
  LineClient,
  mib,
  type ProbedServer,
  Rng,
  randomSeed,
  type ServerSample,
  startProbedServer,
} from './harness.js';

/** The fuzz server's line limit: small enough that over-long lines are cheap to send. */
export const FUZZ_MAX_LINE_BYTES = 64 * 1024;
const MAX_DEPTH = LIMITS.defaultMaxDepth;

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

const j = (v: unknown): string => JSON.stringify(v);

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

// ---------------------------------------------------------------------------------------------
// The oracle: the server's framing rules and its own codec, run locally

export type Expectation =
  | { kind: 'rejected'; code: string; message: string | null; id: string | number | undefined }
  | { kind: 'dispatched'; action: string; id: string | number | undefined; value?: unknown };

const LF = 0x0a;
const CR = 0x0d;

/** The lines of `stream` as the server frames them (trailing bytes count only if `fin`). */
export function frameLines(stream: Buffer, fin: boolean, maxLineBytes: number): (Buffer | null)[] {
  const lines: (Buffer | null)[] = [];
  let start = 0;
  const add = (end: number) => {
    let e = end;
    if (e > start && stream[e - 1] === CR) e--;
    if (e === start) return;
    lines.push(e - start > maxLineBytes ? null : stream.subarray(start, e));
  };
  for (let i = stream.indexOf(LF); i !== -1; i = stream.indexOf(LF, start)) {
    add(i);
    start = i + 1;
  }
  if (fin && start < stream.length) add(stream.length);
  return lines;
}

export function oracle(line: Buffer | null): Expectation {
  if (line === null) return { kind: 'rejected', code: 'LINE_TOO_LONG', message: null, id: undefined };
  const r = decode(line, MAX_DEPTH);
  if (r instanceof RequestError) return { kind: 'rejected', code: r.code, message: r.message, id: r.id };
  return {
    kind: 'dispatched',
    action: r.action,
    id: r.id,
    ...(r.action === 'ECHO' && { value: (r as { value: unknown }).value }),
  };
}

/** Codes a dispatched request may fail with: its action's own, plus BAD_REQUEST from handlers. */
const ALLOWED = new Map(
  Object.values(ACTIONS).map((a) => [a.name, new Set<string>([...a.errors, 'BAD_REQUEST'])]),
);

/** Why `response` is not an acceptable answer to `e`, or null. */
export function judge(e: Expectation, response: string): string | null {
  let r: { id?: unknown; ok?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };
  try {
    r = JSON.parse(response);
  } catch {
    return 'response is not JSON';
  }
  if (typeof r !== 'object' || r === null || typeof r.ok !== 'boolean') return 'response has no ok field';
  if ('event' in r) return 'a push where a response belongs';
  if (r.id !== e.id) return `id ${j(r.id)} where ${j(e.id)} was expected`;
  if (e.kind === 'rejected') {
    if (r.ok !== false || r.error?.code !== e.code) return `expected ${e.code}`;
    if (e.message !== null && r.error.message !== e.message) return `expected message ${j(e.message)}`;
    return null;
  }
  if (r.ok) {
    if (e.action === 'PING' && r.result !== 'PONG') return 'PING did not answer PONG';
    if (e.action === 'ECHO' && j(r.result) !== j(e.value)) return 'ECHO changed the value';
    return null;
  }
  const code = r.error?.code;
  if (typeof code !== 'string' || !ALLOWED.get(e.action)?.has(code)) {
    return `${e.action} failed with ${j(code)}, which it may not`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Sessions

export interface FuzzCounts {
  sessions: number;
  cleanSessions: number;
  abruptSessions: number;
  frames: number;
  bytes: number;
  responses: number;
  /** Pub/sub and key-change pushes received by clean sessions. */
  pushes: number;
  /** Lines of clean sessions, by the action the oracle dispatched them to. */
  cleanDispatched: Record<string, number>;
  cleanErrors: number;
  cleanErrorsByCode: Record<string, number>;
  /** Lines of abrupt sessions the server may or may not have read, by oracle action. */
  abruptDispatched: Record<string, number>;
  abruptLines: number;
}

function newCounts(): FuzzCounts {
  return {
    sessions: 0,
    cleanSessions: 0,
    abruptSessions: 0,
    frames: 0,
    bytes: 0,
    responses: 0,
    pushes: 0,
    cleanDispatched: {},
    cleanErrors: 0,
    cleanErrorsByCode: {},
    abruptDispatched: {},
    abruptLines: 0,
  };
}

const bump = (m: Record<string, number>, k: string, n = 1) => {
  m[k] = (m[k] ?? 0) + n;
};

function pause(rng: Rng): Promise<void> {
  return rng.chance(0.5)
    ? new Promise((resolve) => setImmediate(resolve))
    : new Promise((resolve) => setTimeout(resolve, rng.int(0, 3)));
}

/** Write `stream` in pieces cut at random byte boundaries, sometimes letting them go out separately. */
async function writeSplit(rng: Rng, socket: net.Socket, stream: Buffer): Promise<void> {
  let at = 0;
  while (at < stream.length && !socket.destroyed) {
    const n = rng.chance(0.3) ? rng.int(1, 16) : rng.int(1, Math.max(1, stream.length - at));
    const ok = socket.write(stream.subarray(at, at + n));
    at += n;
    if (!ok)
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
    else if (rng.chance(0.2)) await pause(rng);
  }
}

const SESSION_TIMEOUT_MS = 60_000;

function asPush(line: string): { event: unknown; seq?: unknown } | null {
  try {
    const r = JSON.parse(line) as { event?: unknown; seq?: unknown };
    return 'event' in r && !('ok' in r) ? (r as { event: unknown; seq?: unknown }) : null;
  } catch {
    return null;
  }
}

async function session(
  rng: Rng,
  port: number,
  counts: FuzzCounts,
  failures: string[],
  framesLeft: () => number,
): Promise<void> {
  const burst = Math.min(framesLeft(), rng.chance(0.1) ? rng.int(100, 400) : rng.int(1, 48));
  const parts: Buffer[] = [];
  // Now and then a session that reads slowly asks for ~4 MiB of answers first, more than the
  // loopback socket buffers hold, so the server really does back up and stop reading.
  const slow = rng.chance(0.2);
  if (slow && rng.chance(0.25)) {
    const echo = Buffer.from(`{"action":"ECHO","value":"${'e'.repeat(60_000)}"}\n`);
    for (let i = 0; i < 64; i++) parts.push(echo);
  }
  for (let i = 0; i < burst; i++) {
    parts.push(frame(rng), Buffer.from(rng.chance(0.1) ? '\r\n' : '\n'));
  }
  // A clean session sometimes ends without the last newline: the server must answer on FIN.
  if (parts.length > 0 && rng.chance(0.1)) parts.pop();
  const stream = Buffer.concat(parts);
  const abrupt = rng.chance(0.25);
  counts.sessions++;
  counts.frames += burst;

  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });

  if (abrupt) {
    counts.abruptSessions++;
    const cut = rng.int(0, stream.length);
    const sent = stream.subarray(0, cut);
    counts.bytes += sent.length;
    // Whatever the server read of it may have run, the partial last line included (a destroy
    // sends FIN when nothing is unread, and the server answers a final unterminated line).
    for (const line of frameLines(sent, true, FUZZ_MAX_LINE_BYTES)) {
      counts.abruptLines++;
      const e = oracle(line);
      if (e.kind === 'dispatched') bump(counts.abruptDispatched, e.action);
    }
    socket.resume();
    await writeSplit(rng, socket, sent);
    if (rng.chance(0.3)) await pause(rng);
    if (rng.chance(0.5)) socket.resetAndDestroy();
    else socket.destroy();
    return;
  }

  counts.cleanSessions++;
  counts.bytes += stream.length;
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), SESSION_TIMEOUT_MS);
    socket.once('end', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (slow) {
    // A slow reader for a while: the server's output backs up, it stops reading, and must pick
    // up exactly where it stopped once we drain it.
    socket.pause();
    const writing = writeSplit(rng, socket, stream);
    await new Promise((resolve) => setTimeout(resolve, rng.int(1, 50)));
    socket.resume();
    await writing;
  } else {
    await writeSplit(rng, socket, stream);
  }
  socket.end();
  const gotEnd = await ended;
  socket.destroy();
  if (!gotEnd) {
    failures.push(`a clean session was not finished by the server within ${SESSION_TIMEOUT_MS} ms`);
    return;
  }

  const received = Buffer.concat(chunks).toString('utf8').split('\n');
  const tail = received.pop();
  if (tail !== '') failures.push(`response stream ends mid-line: ${j(tail?.slice(0, 100))}`);
  // Pushes (pub/sub messages, once a fuzzed SUBSCRIBE lands) are not responses: set them aside.
  const responses: string[] = [];
  let lastSeq = 0;
  for (const line of received) {
    const push = line.startsWith('{"event":') ? asPush(line) : null;
    if (push === null) {
      responses.push(line);
      continue;
    }
    // Pushes (pub/sub messages and key changes from fuzzed SUBSCRIBE/OBSERVE) are not responses;
    // their `seq` counts every push to this connection, so it only ever grows.
    counts.pushes++;
    if (typeof push.seq === 'number') {
      if (push.seq <= lastSeq) failures.push(`push seq went from ${lastSeq} to ${push.seq}`);
      lastSeq = push.seq;
    }
  }
  const lines = frameLines(stream, true, FUZZ_MAX_LINE_BYTES);
  counts.responses += responses.length;
  if (responses.length !== lines.length) {
    failures.push(`${lines.length} request lines got ${responses.length} responses`);
  }
  for (let i = 0; i < Math.min(lines.length, responses.length); i++) {
    const e = oracle(lines[i]!);
    const problem = judge(e, responses[i]!);
    if (problem) {
      const shown = lines[i] === null ? '<over-long line>' : j(lines[i]!.toString('utf8').slice(0, 200));
      failures.push(`${problem}: request ${shown} got ${responses[i]!.slice(0, 200)}`);
    }
    if (e.kind === 'dispatched') bump(counts.cleanDispatched, e.action);
    const r = JSON.parse(responses[i]!) as { ok?: boolean; error?: { code: string } };
    if (r.ok === false) {
      counts.cleanErrors++;
      bump(counts.cleanErrorsByCode, r.error!.code);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Churn

export interface ChurnResult {
  cycles: number;
  pings: number;
  failures: string[];
}

/**
 * `cycles` connect/disconnect cycles, `concurrency` at a time: a third just connect and close, a
 * third send PING and half-close after the answer, a third reset (RST) mid-request.
 */
export async function runChurn(
  port: number,
  cycles: number,
  { concurrency = 32, seed = 1 }: { concurrency?: number; seed?: number } = {},
): Promise<ChurnResult> {
  const rng = new Rng(seed);
  let started = 0;
  let pings = 0;
  const failures: string[] = [];
  const one = async (kind: number): Promise<void> => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => {});
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('error', reject);
      });
    } catch (err) {
      if (failures.length < 10) failures.push(`connect failed: ${(err as Error).message}`);
      return;
    }
    if (kind === 0) {
      socket.destroy();
      return;
    }
    if (kind === 2) {
      socket.write('{"action":"SET","key":"churn","val');
      socket.resetAndDestroy();
      return;
    }
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (t: string) => {
        text += t;
        if (text.includes('\n')) resolve(text);
      });
      socket.once('close', () => resolve(text));
      socket.write('{"action":"PING"}\n');
    });
    if (answer === '{"ok":true,"result":"PONG"}\n') pings++;
    else if (failures.length < 10) failures.push(`churn PING answered ${j(answer)}`);
    socket.end();
  };
  const lane = async (): Promise<void> => {
    while (started < cycles) {
      started++;
      await one(rng.int(0, 2));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, cycles) }, lane));
  return { cycles: started, pings, failures };
}

// ---------------------------------------------------------------------------------------------
// The run

export interface FuzzOptions {
  frames: number;
  seconds: number;
  connections?: number;
  seed?: number;
  /** Connect/disconnect cycles after the fuzz (0 = none). */
  churn?: number;
  /** Fuzz a server already running here instead of starting a measured one (no memory checks). */
  port?: number;
  log?: (line: string) => void;
}

export interface FuzzReport {
  ok: boolean;
  seed: number;
  failures: string[];
  counts: FuzzCounts;
  elapsedMs: number;
  churn: ChurnResult | null;
  before: InfoSnapshot;
  after: InfoSnapshot;
  baseline: ServerSample | null;
  final: ServerSample | null;
  /** Longest event-loop delay in the server while it was being fuzzed (ms). */
  loopMaxMs: number | null;
  /** The server's CPU use while it was being fuzzed (% of one core): low with a long delay = starved. */
  cpuPercent: number | null;
}

const CANARIES: Record<string, unknown> = {
  'canary^plain': 'intact',
  'canary^unicode': 'caf\u00e9 😀 \u0000 \u2028 "quoted"',
  'canary^nested': { a: [1, 2, { b: null }], __proto__x: true, n: -0.5 },
  'canary^null': null,
  'canary^number': 9007199254740991,
  'canary^deep^er^key': [[[[['deep']]]]],
};

/** Heap may sit this far above its baseline after the run (after dropping the fuzz keys and GC). */
const HEAP_SLACK_BYTES = 16 * 1048576;

async function dropFuzzKeys(client: LineClient): Promise<void> {
  // Every key the fuzzer could have written lives outside `canary`; page and remove them all.
  for (;;) {
    const ns = await client.request<{ namespaces: string[] }>({ action: 'NAMESPACES', limit: 10_000 });
    const keys = await client.request<{ keys: string[] }>({ action: 'KEYS', limit: 10_000 });
    const namespaces = (ns.result?.namespaces ?? []).filter((n) => n !== 'canary');
    const roots = keys.result?.keys ?? [];
    if (namespaces.length === 0 && roots.length === 0) return;
    client.send(
      ...namespaces.map((n) => ({ action: 'DROP', namespace: n })),
      ...roots.map((k) => ({ action: 'DEL', key: k })),
    );
    await client.take(namespaces.length + roots.length);
  }
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const seed = options.seed ?? randomSeed();
  const rng = new Rng(seed);
  const log = options.log ?? (() => {});
  const failures: string[] = [];
  const counts = newCounts();
  log(`fuzz: seed ${seed} (rerun with --seed ${seed}), ${options.frames} frames / ${options.seconds} s`);

  let server: ProbedServer | null = null;
  let port = options.port;
  if (port === undefined) {
    // No idle timeout: the control connection sits idle through the whole run (idle timeouts are
    // exercised in test/faults.test.ts).
    server = await startProbedServer({ config: { maxLineBytes: FUZZ_MAX_LINE_BYTES, idleTimeout: 0 } });
    port = server.port;
  }
  let control: LineClient | undefined;
  try {
    control = await LineClient.open(port);
    const written = await control.request({ action: 'MSET', entries: CANARIES });
    if (!written.ok) throw new Error(`canaries not written: ${j(written)}`);
    const baseline = server ? await server.sample({ gc: true }) : null;
    const before = await info(control);

    const started = Date.now();
    const deadline = started + options.seconds * 1000;
    const framesLeft = () => options.frames - counts.frames;
    const running = () => framesLeft() > 0 && Date.now() < deadline && failures.length < 50;
    const lane = async (laneRng: Rng): Promise<void> => {
      while (running()) {
        try {
          await session(laneRng, port!, counts, failures, framesLeft);
        } catch (err) {
          failures.push(`session failed: ${(err as Error).message}`);
        }
      }
    };
    await server?.sample(); // the loop-delay window is the fuzz itself
    const lanes = Array.from({ length: options.connections ?? 32 }, () => lane(rng.fork()));
    let ticker: NodeJS.Timeout | undefined;
    ticker = setInterval(() => {
      log(
        `  ${Math.round((Date.now() - started) / 1000)} s: ${counts.frames} frames, ${counts.sessions} sessions`,
      );
    }, 5000);
    await Promise.all(lanes);
    clearInterval(ticker);
    ticker = undefined;
    const elapsedMs = Date.now() - started;
    const fuzzWindow = server ? await server.sample() : null;

    const churn = options.churn ? await runChurn(port, options.churn, { seed: rng.u32() }) : null;
    if (churn) failures.push(...churn.failures);

    // Every connection the run opened is gone (the transport's close is asynchronous).
    const control_ = control;
    let infoCalls = 0;
    const snapshot = () => {
      infoCalls++;
      return info(control_);
    };
    let after = await snapshot();
    const deadlineClose = Date.now() + 15_000;
    while (after.connections.current !== 1 && Date.now() < deadlineClose) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      after = await snapshot();
    }
    failures.push(
      ...account(before, after, counts, {
        opened: counts.sessions + (churn?.cycles ?? 0),
        controlInfo: infoCalls,
        churnPings: churn?.pings ?? 0,
      }),
    );

    const ping = await control.request({ action: 'PING', id: 'after' });
    if (ping.result !== 'PONG' || ping.id !== 'after') failures.push(`PING after the run: ${j(ping)}`);
    const canaries = await control.request<Record<string, unknown>>({
      action: 'MGET',
      keys: Object.keys(CANARIES),
    });
    if (j(canaries.result) !== j(CANARIES)) failures.push(`canaries changed: ${j(canaries.result)}`);
    const canaryCount = await control.request({ action: 'COUNT', namespace: 'canary' });
    if (canaryCount.result !== Object.keys(CANARIES).length) {
      failures.push(`canary namespace holds ${j(canaryCount.result)} keys`);
    }

    let final: ServerSample | null = null;
    if (server && baseline) {
      await dropFuzzKeys(control);
      final = await server.sample({ gc: true });
      if (final.heapUsed > baseline.heapUsed + HEAP_SLACK_BYTES) {
        failures.push(
          `heap did not return near its baseline: ${mib(baseline.heapUsed)} MiB -> ${mib(final.heapUsed)} MiB`,
        );
      }
      for (const record of server.problems.filter((r) => (r.level as number) >= 50)) {
        failures.push(`server logged an error: ${j(record).slice(0, 300)}`);
      }
    }
    return {
      ok: failures.length === 0,
      seed,
      failures: failures.slice(0, 50),
      counts,
      elapsedMs,
      churn,
      before,
      after,
      baseline,
      final,
      loopMaxMs: fuzzWindow?.loopMaxMs ?? null,
      cpuPercent: fuzzWindow?.cpuPercent ?? null,
    };
  } finally {
    control?.close();
    if (server) {
      const exit = await server.stop();
      if (exit.code !== 0) failures.push(`server exited with ${exit.code ?? exit.signal} on SIGTERM`);
    }
  }
}

/** The INFO accounting described at the top of this file; returns what does not add up. */
export function account(
  before: InfoSnapshot,
  after: InfoSnapshot,
  c: FuzzCounts,
  extra: { opened: number; controlInfo: number; churnPings: number },
): string[] {
  const { opened } = extra;
  const problems: string[] = [];
  const actions = new Set([...Object.keys(after.commands.byAction), ...Object.keys(c.cleanDispatched)]);
  for (const a of actions) {
    const delta = (after.commands.byAction[a] ?? 0) - (before.commands.byAction[a] ?? 0);
    // The control connection's INFOs after `before` (the last one counted itself) and churn's PINGs.
    const low =
      (c.cleanDispatched[a] ?? 0) +
      (a === 'INFO' ? extra.controlInfo : 0) +
      (a === 'PING' ? extra.churnPings : 0);
    const high = low + (c.abruptDispatched[a] ?? 0);
    if (delta < low || delta > high)
      problems.push(`INFO commands.byAction.${a} grew by ${delta}, expected ${low}..${high}`);
  }
  const errors = after.errors.total - before.errors.total;
  if (errors < c.cleanErrors || errors > c.cleanErrors + c.abruptLines) {
    problems.push(
      `INFO errors.total grew by ${errors}, expected ${c.cleanErrors}..${c.cleanErrors + c.abruptLines}`,
    );
  }
  for (const [code, n] of Object.entries(c.cleanErrorsByCode)) {
    const delta = (after.errors.byCode[code] ?? 0) - (before.errors.byCode[code] ?? 0);
    if (delta < n || delta > n + c.abruptLines)
      problems.push(`INFO errors.byCode.${code} grew by ${delta}, expected >= ${n}`);
  }
  if ((after.errors.byCode.INTERNAL ?? 0) !== 0)
    problems.push(`${after.errors.byCode.INTERNAL} INTERNAL errors`);
  const connections = after.connections.total - before.connections.total;
  if (connections !== opened)
    problems.push(`INFO connections.total grew by ${connections}, expected ${opened}`);
  if (after.connections.current !== 1) {
    problems.push(
      `INFO connections.current is ${after.connections.current}, expected 1 (the control connection)`,
    );
  }
  return problems;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      frames: { type: 'string', default: '200000' },
      seconds: { type: 'string', default: '60' },
      connections: { type: 'string', default: '32' },
      seed: { type: 'string' },
      churn: { type: 'string', default: '0' },
      port: { type: 'string' },
    },
  });
  const report = await runFuzz({
    frames: Number(values.frames),
    seconds: Number(values.seconds),
    connections: Number(values.connections),
    churn: Number(values.churn),
    ...(values.seed !== undefined && { seed: Number(values.seed) }),
    ...(values.port !== undefined && { port: Number(values.port) }),
    log: (line) => console.log(line),
  });
  const { before: _b, after: _a, ...summary } = report;
  console.log(JSON.stringify(summary, null, 2));
  console.log(report.ok ? 'fuzz: PASS' : `fuzz: FAIL (seed ${report.seed})`);
  process.exitCode = report.ok ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
