import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ErrorTally, LineCounter, NdjsonCounter, type ReplyCounter, RespCounter } from './replies.js';

/** Feed `bytes` in pieces cut at `cuts` (through one reused buffer, as the generator does). */
function feedInPieces(counter: ReplyCounter, bytes: Buffer, cuts: number[]): number {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const scratch = Buffer.alloc(bytes.length + 1);
  let total = 0;
  let from = 0;
  for (const to of [...points, bytes.length]) {
    if (to <= from) continue;
    bytes.copy(scratch, 0, from, to);
    total += counter.feed(scratch, 0, to - from);
    scratch.fill(0xff); // a reused read buffer: stale bytes must never be read again
    from = to;
  }
  return total;
}

type Reply =
  | { kind: 'simple'; text: string }
  | { kind: 'int'; n: number }
  | { kind: 'error'; prefix: string; rest: string }
  | { kind: 'bulk'; body: string }
  | { kind: 'nullBulk' }
  | { kind: 'nullArray' }
  | { kind: 'array'; items: Reply[] };

function encode(reply: Reply): string {
  switch (reply.kind) {
    case 'simple':
      return `+${reply.text}\r\n`;
    case 'int':
      return `:${reply.n}\r\n`;
    case 'error':
      return `-${reply.prefix}${reply.rest ? ` ${reply.rest}` : ''}\r\n`;
    case 'bulk':
      return `$${Buffer.byteLength(reply.body)}\r\n${reply.body}\r\n`;
    case 'nullBulk':
      return '$-1\r\n';
    case 'nullArray':
      return '*-1\r\n';
    case 'array':
      return `*${reply.items.length}\r\n${reply.items.map(encode).join('')}`;
  }
}

function errorsIn(reply: Reply, tally: ErrorTally): void {
  if (reply.kind === 'error') tally.set(reply.prefix, (tally.get(reply.prefix) ?? 0) + 1);
  if (reply.kind === 'array') for (const item of reply.items) errorsIn(item, tally);
}

const line = fc.string({ unit: fc.constantFrom(...'abcXYZ 019-_:'.split('')), maxLength: 20 });
const { reply } = fc.letrec<{ reply: Reply }>((tie) => ({
  reply: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    line.map((text): Reply => ({ kind: 'simple', text })),
    fc.integer().map((n): Reply => ({ kind: 'int', n })),
    fc
      .record({ prefix: fc.constantFrom('ERR', 'WRONGTYPE', 'NOAUTH', 'MOVED'), rest: line })
      .map((e): Reply => ({ kind: 'error', ...e })),
    // Bodies with CR, LF, `$` and `*` inside: a bulk is skipped by length, never scanned.
    fc
      .string({ unit: fc.constantFrom('a', '\r', '\n', '$', '*', '-', 'é'), maxLength: 40 })
      .map((body): Reply => ({ kind: 'bulk', body })),
    fc.constant<Reply>({ kind: 'nullBulk' }),
    fc.constant<Reply>({ kind: 'nullArray' }),
    fc.array(tie('reply'), { maxLength: 4 }).map((items): Reply => ({ kind: 'array', items })),
  ),
}));

describe('RespCounter', () => {
  it('counts every top-level reply and every error prefix, however the stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(reply, { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (replies, cuts) => {
          const errors: ErrorTally = new Map();
          const bytes = Buffer.from(replies.map(encode).join(''));
          expect(feedInPieces(new RespCounter(errors), bytes, cuts)).toBe(replies.length);
          const expected: ErrorTally = new Map();
          for (const r of replies) errorsIn(r, expected);
          expect(Object.fromEntries(errors)).toEqual(Object.fromEntries(expected));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('reads the replies of SET, GET (hit and miss), INCR, PING and errors, byte by byte', () => {
    const errors: ErrorTally = new Map();
    const stream = Buffer.from(
      '+OK\r\n$5\r\nhello\r\n$-1\r\n:42\r\n+PONG\r\n-ERR value is not an integer or out of range\r\n' +
        '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n',
    );
    const counter = new RespCounter(errors);
    let n = 0;
    for (let i = 0; i < stream.length; i++) n += counter.feed(stream.subarray(i, i + 1));
    expect(n).toBe(7);
    expect(Object.fromEntries(errors)).toEqual({ ERR: 1, WRONGTYPE: 1 });
  });

  it('refuses a stream that is not RESP instead of miscounting it', () => {
    expect(() => new RespCounter(new Map()).feed(Buffer.from('{"ok":true}\n'))).toThrow(/RESP reply/);
  });
});

describe('NdjsonCounter', () => {
  const okLine = fc.constantFrom(
    '{"ok":true,"result":"OK"}',
    '{"ok":true,"result":{"written":true}}',
    '{"ok":true,"result":"PONG"}',
    '{"ok":true,"result":42}',
    '{"ok":true,"result":"a\\nb"}',
  );
  const errorLine = fc
    .constantFrom('KEY_NOT_FOUND', 'WRONG_TYPE', 'BAD_REQUEST')
    .map((code) => ({ code, line: JSON.stringify({ ok: false, error: { code, message: `x ${code}` } }) }));

  it('counts ok lines by prefix and errors by code, however the stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            okLine.map((line) => ({ code: null, line })),
            errorLine,
          ),
          { maxLength: 40 },
        ),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.boolean(),
        (lines, cuts, crlf) => {
          const errors: ErrorTally = new Map();
          const bytes = Buffer.from(lines.map((l) => `${l.line}${crlf ? '\r\n' : '\n'}`).join(''));
          expect(feedInPieces(new NdjsonCounter(errors), bytes, cuts)).toBe(lines.length);
          const expected: Record<string, number> = {};
          for (const { code } of lines) if (code) expected[code] = (expected[code] ?? 0) + 1;
          expect(Object.fromEntries(errors)).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('parses lines in another field order, skips pushes, and flags what is not a response', () => {
    const errors: ErrorTally = new Map();
    const counter = new NdjsonCounter(errors);
    const stream =
      '{"id":1,"ok":true,"result":1}\n{"id":2,"ok":false,"error":{"code":"KEY_NOT_FOUND"}}\n' +
      '{"event":"message","channel":"c","data":1}\n{"action":"SET","key":"k","value":"v"}\nnot json\n\n';
    expect(counter.feed(Buffer.from(stream))).toBe(4);
    expect(Object.fromEntries(errors)).toEqual({ KEY_NOT_FOUND: 1, BAD_RESPONSE: 2 });
  });
});

describe('LineCounter', () => {
  it('counts newlines across chunk boundaries', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 30 }), { maxLength: 30 }),
        fc.array(fc.nat()),
        (texts, cuts) => {
          const lines = texts.map((t) => t.replaceAll('\n', ' '));
          const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(''));
          expect(feedInPieces(new LineCounter(), bytes, cuts)).toBe(lines.length);
        },
      ),
    );
  });
});
