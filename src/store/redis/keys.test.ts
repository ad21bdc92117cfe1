import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc16, decodeUnits, encodeUnits, escapeTag, KeyLayout, slotOf, topOf } from './keys.js';

// Any string, lone surrogates included.
const text = fc.string({ unit: 'binary', maxLength: 12 });
// A namespace segment: anything but the separator, not empty.
const segment = fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }).filter((s) => !s.includes('^'));

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);
/** caretkv's listing order: UTF-16 code units, as Array.prototype.sort and `<` compare strings. */
const unitOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

describe('unit encoding (what Redis compares)', () => {
  it('round-trips any string, lone surrogates too', () => {
    fc.assert(
      fc.property(text, (s) => {
        expect(decodeUnits(encodeUnits(s))).toBe(s);
      }),
    );
    expect(decodeUnits(encodeUnits('a\ud800b\udfff'))).toBe('a\ud800b\udfff');
  });

  it('orders bytes as caretkv orders names (UTF-16 code units), which UTF-8 does not', () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        expect(sign(Buffer.compare(encodeUnits(a), encodeUnits(b)))).toBe(unitOrder(a, b));
      }),
      { numRuns: 2000 },
    );
    // An emoji (a surrogate pair) sorts before U+FFFF in UTF-16 and after it in UTF-8.
    const emoji = '\u{1F600}';
    expect(unitOrder(emoji, '\uffff')).toBe(-1);
    expect(Buffer.compare(encodeUnits(emoji), encodeUnits('\uffff'))).toBe(-1);
    expect(Buffer.compare(Buffer.from(emoji), Buffer.from('\uffff'))).toBe(1);
  });

  it('refuses bytes it never writes', () => {
    for (const bad of [
      [0x80],
      [0xc0, 0x80],
      [0xc3],
      [0xe0, 0x80, 0x80],
      [0xf0, 0x9f, 0x98, 0x80],
      [0xe2, 0x82],
    ]) {
      expect(() => decodeUnits(Uint8Array.from(bad)), JSON.stringify(bad)).toThrow();
    }
  });
});

describe('key layout (hash tags)', () => {
  const layout = new KeyLayout();

  it('crc16 is Redis Cluster’s (the spec’s test vector)', () => {
    expect(crc16(Buffer.from('123456789'))).toBe(0x31c3);
  });

  it('puts every key of a top-level namespace, its indexes and counters in one slot', () => {
    fc.assert(
      fc.property(segment, fc.array(segment, { minLength: 1, maxLength: 4 }), (top, rest) => {
        const ns = [top, ...rest.slice(0, -1)].join('^');
        const key = [top, ...rest].join('^');
        const tagSlot = crc16(encodeUnits(escapeTag(top))) & 16383;
        for (const redisKey of [
          layout.value(key),
          layout.value(top),
          layout.keyIndex(ns),
          layout.childIndex(ns),
          layout.counters(key),
        ]) {
          expect(slotOf(redisKey)).toBe(tagSlot);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('escapes braces so the tag is always the whole namespace, and distinct namespaces stay distinct', () => {
    for (const top of ['}', '{', '{}', 'a}b', '%7D', '}{']) {
      const key = layout.value(`${top}^x`);
      const open = key.indexOf(0x7b);
      const close = key.indexOf(0x7d, open + 1);
      expect(decodeUnits(key.subarray(open + 1, close))).toBe(escapeTag(top));
      expect(escapeTag(top)).not.toMatch(/[{}]/);
    }
    fc.assert(
      fc.property(segment, segment, (a, b) => {
        if (a !== b) expect(escapeTag(a)).not.toBe(escapeTag(b));
      }),
    );
  });

  it('names the top-level namespace of keys and paths', () => {
    expect(topOf('users^42^name')).toBe('users');
    expect(topOf('solo')).toBe('solo');
  });
});
