import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  channelRules,
  KEY_PATTERN_RULES,
  matches,
  matchesUnder,
  type PathRules,
  type Pattern,
  PatternError,
  parsePattern,
} from './pattern.js';
import { SubscriptionIndex } from './trie.js';

const CHANNELS = channelRules();

function pattern(text: string, rules: PathRules = CHANNELS): Pattern {
  const p = parsePattern(text, rules);
  if (p instanceof PatternError) throw new Error(p.message);
  return p;
}

interface Entry {
  id: number;
  pattern: Pattern;
}

const segment = fc.constantFrom('a', 'b', 'c', '$sys', '$x');
const channel = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('^'));
const patternText = fc
  .tuple(fc.array(fc.oneof(segment, fc.constant('*')), { minLength: 0, maxLength: 4 }), fc.boolean())
  .filter(([segs, rest]) => segs.length > 0 || rest)
  .map(([segs, rest]) => [...segs, ...(rest ? ['>'] : [])].join('^'));

const ids = (entries: Entry[]) => entries.map((e) => e.id).sort((a, b) => a - b);

describe('SubscriptionIndex', () => {
  it('finds exact and wildcard subscriptions, once each', () => {
    const index = new SubscriptionIndex<Entry>({ reserved: true });
    const entries = ['news^eu', 'news^*', 'news^>', '>', '*^eu', 'news^eu^fr', '$sys^>'].map((t, id) => ({
      id,
      pattern: pattern(t),
    }));
    for (const e of entries) index.add(e.pattern, e);
    const out: Entry[] = [];
    index.match('news^eu', out);
    expect(out.map((e) => e.pattern.text).sort()).toEqual(['*^eu', '>', 'news^*', 'news^>', 'news^eu']);
    out.length = 0;
    index.match('$sys^shutdown', out);
    expect(out.map((e) => e.pattern.text)).toEqual(['$sys^>']);
    out.length = 0;
    index.match('$sys', out);
    expect(out).toEqual([]);
  });

  it('agrees with the reference matcher for any set of patterns (property)', () => {
    fc.assert(
      fc.property(
        fc.array(patternText, { maxLength: 30 }),
        fc.array(channel, { minLength: 1, maxLength: 10 }),
        fc.boolean(),
        (texts, channels, reserved) => {
          const rules = reserved ? CHANNELS : KEY_PATTERN_RULES;
          const index = new SubscriptionIndex<Entry>({ reserved, prefixQueries: !reserved });
          const entries = texts.map((t, id) => ({ id, pattern: pattern(t, rules) }));
          for (const e of entries) index.add(e.pattern, e);
          expect(index.size).toBe(entries.length);
          for (const c of channels) {
            const out: Entry[] = [];
            index.match(c, out);
            expect(ids(out)).toEqual(ids(entries.filter((e) => matches(e.pattern, c, rules))));
          }
          // Remove half, check again, then the rest: the index ends empty, with no node left.
          for (const e of entries.filter((e) => e.id % 2 === 0))
            expect(index.remove(e.pattern, e)).toBe(true);
          const left = entries.filter((e) => e.id % 2 === 1);
          for (const c of channels) {
            const out: Entry[] = [];
            index.match(c, out);
            expect(ids(out)).toEqual(ids(left.filter((e) => matches(e.pattern, c, rules))));
          }
          for (const e of left) expect(index.remove(e.pattern, e)).toBe(true);
          expect(index.size).toBe(0);
          expect(index.nodeCount).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('finds whom a namespace drop concerns, like the reference (property)', () => {
    const namespace = fc.array(segment, { minLength: 0, maxLength: 3 }).map((s) => s.join('^'));
    fc.assert(
      fc.property(fc.array(patternText, { maxLength: 30 }), namespace, (texts, ns) => {
        const index = new SubscriptionIndex<Entry>({ reserved: false, prefixQueries: true });
        const entries = texts.map((t, id) => ({ id, pattern: pattern(t, KEY_PATTERN_RULES) }));
        for (const e of entries) index.add(e.pattern, e);
        const out: Entry[] = [];
        index.matchUnder(ns, out);
        expect(ids(out)).toEqual(ids(entries.filter((e) => matchesUnder(e.pattern, ns))));
      }),
      { numRuns: 1000 },
    );
  });

  it('returns exactly to its size after 1000 subscribers come and go', () => {
    const index = new SubscriptionIndex<Entry>({ reserved: true });
    const resident = { id: -1, pattern: pattern('news^*') };
    index.add(resident.pattern, resident);
    const before = { size: index.size, nodes: index.nodeCount };
    const entries: Entry[] = [];
    for (let i = 0; i < 1000; i++) {
      for (const t of [`user^${i}`, `user^${i}^>`, `*^${i % 7}^*`, 'news^*', 'news^eu']) {
        const e = { id: i, pattern: pattern(t) };
        entries.push(e);
        index.add(e.pattern, e);
      }
    }
    expect(index.size).toBe(before.size + 5000);
    expect(index.nodeCount).toBeGreaterThan(before.nodes + 1000);
    for (const e of entries) expect(index.remove(e.pattern, e)).toBe(true);
    expect({ size: index.size, nodes: index.nodeCount }).toEqual(before);
    const out: Entry[] = [];
    index.match('news^eu', out);
    expect(out).toEqual([resident]);
  });

  it('removes only what is there', () => {
    const index = new SubscriptionIndex<Entry>({ reserved: true });
    const e = { id: 1, pattern: pattern('a^*') };
    expect(index.remove(e.pattern, e)).toBe(false);
    index.add(e.pattern, e);
    expect(index.remove(pattern('a^b'), e)).toBe(false);
    expect(index.remove(e.pattern, { ...e })).toBe(false);
    expect(index.remove(e.pattern, e)).toBe(true);
    expect(index.nodeCount).toBe(0);
  });

  it('refuses prefix queries it was not built for', () => {
    expect(() => new SubscriptionIndex<Entry>({ reserved: true }).matchUnder('a', [])).toThrow(
      /prefixQueries/,
    );
  });
});
