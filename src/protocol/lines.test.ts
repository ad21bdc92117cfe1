import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LINE_TOO_LONG, LineFramer, type LineResult } from './lines.js';

type Out = string | typeof LINE_TOO_LONG;

function drain(f: LineFramer): Out[] {
  const out: Out[] = [];
  for (let r: LineResult = f.next(); r !== null; r = f.next()) {
    out.push(r === LINE_TOO_LONG || typeof r === 'string' ? r : r.toString('utf8'));
  }
  return out;
}

function frame(chunks: (string | Buffer)[], max = 1024): Out[] {
  const f = new LineFramer(max);
  const out: Out[] = [];
  for (const c of chunks) {
    f.push(typeof c === 'string' ? Buffer.from(c) : c);
    out.push(...drain(f));
  }
  return out;
}

describe('LineFramer', () => {
  it('splits on \\n, strips a trailing \\r, skips blank lines', () => {
    expect(frame(['a\nb\r\n\n\r\nc\n'])).toEqual(['a', 'b', 'c']);
  });

  it('joins a line split across chunks, including a \\r\\n split between them', () => {
    expect(frame(['{"act', 'ion":"P', 'ING"}\r', '\nnext\n'])).toEqual(['{"action":"PING"}', 'next']);
  });

  it('returns the lines of an all-ASCII chunk as strings', () => {
    const f = new LineFramer(100);
    f.push(Buffer.from('hello\r\nworld\n'));
    expect([f.next(), f.next(), f.next()]).toEqual(['hello', 'world', null]);
  });

  it('returns a view into the chunk for a chunk with other bytes (no copy, UTF-8 left to the caller)', () => {
    const f = new LineFramer(100);
    const chunk = Buffer.from('h\u00e9llo\nworld\n\xff\n', 'utf8');
    const invalid = Buffer.concat([chunk, Buffer.from([0xff, 0x0a])]);
    f.push(invalid);
    const first = f.next() as Buffer;
    expect(Buffer.isBuffer(first)).toBe(true);
    expect(first.buffer).toBe(invalid.buffer);
    expect(first.toString('utf8')).toBe('h\u00e9llo');
    expect((f.next() as Buffer).toString()).toBe('world');
    expect(f.next()).toEqual(Buffer.from('\u00ff', 'utf8'));
    expect(f.next()).toEqual(Buffer.from([0xff]));
    expect(f.next()).toBeNull();
  });

  it('holds a partial line until its newline arrives', () => {
    const f = new LineFramer(100);
    f.push(Buffer.from('abc'));
    expect(f.next()).toBeNull();
    f.push(Buffer.from('def'));
    expect(f.next()).toBeNull();
    f.push(Buffer.from('\n'));
    expect(f.next()?.toString()).toBe('abcdef');
    expect(f.next()).toBeNull();
  });

  it('signals LINE_TOO_LONG once for a long line in one chunk and continues after it', () => {
    expect(frame([`ok1\n${'x'.repeat(11)}\nok2\n`], 10)).toEqual(['ok1', LINE_TOO_LONG, 'ok2']);
  });

  it('accepts a line of exactly the limit, not counting \\r\\n', () => {
    expect(frame([`${'x'.repeat(10)}\r\n`], 10)).toEqual(['x'.repeat(10)]);
    expect(frame([`${'x'.repeat(5)}`, `${'x'.repeat(5)}\r`, '\n'], 10)).toEqual(['x'.repeat(10)]);
  });

  it('signals an over-long streamed line before its end arrives, without buffering it', () => {
    const f = new LineFramer(1000);
    f.push(Buffer.from('first\n'));
    expect(f.next()?.toString()).toBe('first');
    const block = Buffer.alloc(600, 0x78);
    const seen: Out[] = [];
    for (let i = 0; i < 1000; i++) {
      f.push(block);
      seen.push(...drain(f));
      // Memory stays bounded while the 600 kB line streams through.
      expect(f.bufferedBytes).toBeLessThanOrEqual(1001);
    }
    expect(seen).toEqual([LINE_TOO_LONG]);
    f.push(Buffer.from('tail of the long line\nafter\n'));
    expect(drain(f)).toEqual(['after']);
  });

  it('leaves unread complete lines buffered when the caller stops pulling', () => {
    const f = new LineFramer(100);
    f.push(Buffer.from('a\nb\nc'));
    expect(f.next()?.toString()).toBe('a');
    f.push(Buffer.from('\nd\n'));
    expect(f.hasInput).toBe(true);
    expect(drain(f)).toEqual(['b', 'c', 'd']);
    expect(f.hasInput).toBe(false);
  });

  it('finish() yields an unterminated last line, but not the rest of a discarded one', () => {
    const f = new LineFramer(5);
    f.push(Buffer.from('abc\ndef'));
    expect(drain(f)).toEqual(['abc']);
    expect(f.finish()?.toString()).toBe('def');
    expect(f.finish()).toBeNull();

    const g = new LineFramer(5);
    g.push(Buffer.from('0123456789'));
    expect(drain(g)).toEqual([LINE_TOO_LONG]);
    expect(g.finish()).toBeNull();
  });

  it('takes a new limit for lines not yet returned (raised after AUTH), and validates it', () => {
    const f = new LineFramer(8);
    f.push(Buffer.from('0123456789\nab'));
    expect(drain(f)).toEqual([LINE_TOO_LONG]);
    f.maxLineBytes = 16;
    expect(f.maxLineBytes).toBe(16);
    // The partial line being carried is judged by the new limit when it completes.
    f.push(Buffer.from('cdefghijkl\n0123456789abcdefXYZ\n'));
    expect(drain(f)).toEqual(['abcdefghijkl', LINE_TOO_LONG]);
    expect(() => {
      f.maxLineBytes = 0;
    }).toThrow(RangeError);
    expect(f.maxLineBytes).toBe(16);
  });

  it('rejects a nonsensical limit', () => {
    expect(() => new LineFramer(0)).toThrow(RangeError);
  });

  it('any chunking of the same bytes yields the same lines (property)', () => {
    const lineArb = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, '')),
      fc.constant(''),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(lineArb, fc.boolean()), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.integer({ min: 1, max: 40 }),
        (lines, cuts, max) => {
          const text = lines.map(([l, crlf]) => l + (crlf ? '\r\n' : '\n')).join('');
          const bytes = Buffer.from(text);
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let prev = 0;
          for (const p of points) {
            chunks.push(bytes.subarray(prev, p));
            prev = p;
          }
          chunks.push(bytes.subarray(prev));
          const expected = lines
            .map(([l]) => l)
            .filter((l) => l.length > 0)
            .map((l) => (Buffer.byteLength(l) > max ? LINE_TOO_LONG : l));
          expect(frame(chunks, max)).toEqual(expected);
        },
      ),
    );
  });
});
