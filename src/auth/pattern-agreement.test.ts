/**
 * Permissions and pub/sub must read a `^` pattern the same way: a user allowed `news^*` may
 * subscribe to `news^*`, and must then be allowed exactly the channels that subscription receives.
 * So for the same text, auth's PathPattern (and PatternSet) must accept what pub/sub's parsePattern
 * accepts and match what pub/sub's reference `matches` matches, for channels (with the reserved `$`
 * rule) and for keys (without it). Generated from a small alphabet so that wildcards, look-alikes
 * (`a*`, `>b`), reserved first segments, leading carets and malformed input meet often.
 */
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
  parseChannel,
  parsePattern,
} from '../pubsub/pattern.js';
import { isKeyPathError, parseKey } from '../store/keypath.js';
import { PathPattern, PatternSet, PatternSyntaxError } from './pattern.js';

const RUNS = 5000;
const CHANNELS = channelRules();
const FAMILIES: readonly { name: string; rules: PathRules; reserved: boolean }[] = [
  { name: 'channel', rules: CHANNELS, reserved: true },
  { name: 'key', rules: KEY_PATTERN_RULES, reserved: false },
];

/** Segments both parsers accept as ordinary names, including wildcard look-alikes. */
const NAMES = ['a', 'b', '$sys', '$x', '$', 'a*', '>b', '*>', ' ', 'é'];
/** Segments a pattern may hold: names, the two wildcards, and pieces that make it malformed. */
const PATTERN_SEGMENTS = [...NAMES, '*', '>', '', '^', '\u0001', 'a\u007f'];

const leadingCaret = fc.boolean().map((caret) => (caret ? '^' : ''));
const patternText = fc.oneof(
  {
    weight: 20,
    arbitrary: fc
      .tuple(leadingCaret, fc.array(fc.constantFrom(...PATTERN_SEGMENTS), { minLength: 1, maxLength: 5 }))
      .map(([caret, segs]) => caret + segs.join('^')),
  },
  { weight: 1, arbitrary: fc.constantFrom('', '^', '^^', '>', '^>', '*', '^*', 'a^', '^a^', '>^>', '^^a') },
);

/** Raw subject text: names plus, for keys, `*` and `>` (a key may be called that; a channel not). */
function subjectText(wildcards: boolean) {
  const segs = wildcards ? [...NAMES, '*', '>'] : NAMES;
  return fc
    .tuple(leadingCaret, fc.array(fc.constantFrom(...segs), { minLength: 1, maxLength: 5 }))
    .map(([caret, s]) => caret + s.join('^'));
}

/** A subject built to fit the pattern: each `*` becomes one name, a final `>` one to three. */
function instance(pattern: Pattern, fill: readonly string[]): string {
  let k = 0;
  const next = () => fill[k++ % fill.length]!;
  const out: string[] = [];
  for (const seg of pattern.segments) {
    if (seg === '*') out.push(next());
    else if (seg === '>') for (let n = 1 + (fill.length % 3); n > 0; n--) out.push(next());
    else out.push(seg);
  }
  return out.join('^');
}

function canonical(subject: string, reserved: boolean): string | undefined {
  if (reserved) {
    const c = parseChannel(subject, CHANNELS);
    return typeof c === 'string' ? c : undefined;
  }
  const k = parseKey(subject);
  return isKeyPathError(k) ? undefined : k;
}

function compileAuth(text: string): PathPattern | undefined {
  try {
    return new PathPattern(text);
  } catch (err) {
    if (!(err instanceof PatternSyntaxError)) throw err;
    return undefined;
  }
}

describe('auth and pub/sub agree on ^ patterns', () => {
  it('accept and refuse the same patterns, with the same canonical text and segments', () => {
    const seen = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(patternText, (text) => {
        const mine = compileAuth(text);
        for (const { rules } of FAMILIES) {
          const theirs = parsePattern(text, rules);
          expect(mine === undefined, `${JSON.stringify(text)} as ${rules.noun} pattern`).toBe(
            theirs instanceof PatternError,
          );
          if (mine === undefined || theirs instanceof PatternError) continue;
          expect(mine.text).toBe(theirs.text);
          expect(mine.rest ? [...mine.segments, '>'] : mine.segments).toEqual(theirs.segments);
        }
        seen[mine === undefined ? 'refused' : 'accepted']++;
      }),
      { numRuns: RUNS },
    );
    // The alphabet must exercise both sides, or agreement is vacuous.
    expect(seen.accepted).toBeGreaterThan(RUNS / 10);
    expect(seen.refused).toBeGreaterThan(RUNS / 10);
  });

  for (const { name, rules, reserved } of FAMILIES) {
    it(`match the same ${name}s (PathPattern and PatternSet against pub/sub's reference matcher)`, () => {
      const seen = { match: 0, miss: 0, hidden: 0 };
      fc.assert(
        fc.property(
          patternText,
          subjectText(!reserved),
          fc.array(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 4 }),
          (text, random, fill) => {
            const theirs = parsePattern(text, rules);
            if (theirs instanceof PatternError) return;
            const mine = new PathPattern(text);
            const set = new PatternSet([text]);
            // A random subject mostly misses; one built from the pattern mostly matches.
            for (const subject of [random, instance(theirs, fill)]) {
              const path = canonical(subject, reserved);
              if (path === undefined) continue;
              const expected = matches(theirs, path, rules);
              const why = `${JSON.stringify(text)} against ${name} ${JSON.stringify(path)}`;
              expect(mine.matches(path, reserved), why).toBe(expected);
              expect(set.matches(path, reserved), `PatternSet: ${why}`).toBe(expected);
              seen[expected ? 'match' : 'miss']++;
              if (reserved && !expected && path.startsWith('$') && matches(theirs, path, KEY_PATTERN_RULES))
                seen.hidden++;
            }
          },
        ),
        { numRuns: RUNS },
      );
      expect(seen.match).toBeGreaterThan(RUNS / 10);
      expect(seen.miss).toBeGreaterThan(RUNS / 10);
      // For channels, the reserved rule itself must have been exercised.
      if (reserved) expect(seen.hidden).toBeGreaterThan(0);
    });
  }

  it('agree on which namespaces a pattern reaches below (mayMatchBelow and matchesUnder)', () => {
    const namespace = fc
      .array(fc.constantFrom(...NAMES, '*', '>'), { minLength: 0, maxLength: 4 })
      .map((s) => s.join('^'));
    fc.assert(
      fc.property(patternText, namespace, (text, ns) => {
        const theirs = parsePattern(text, KEY_PATTERN_RULES);
        if (theirs instanceof PatternError) return;
        expect(new PathPattern(text).mayMatchBelow(ns), `${text} below ${JSON.stringify(ns)}`).toBe(
          matchesUnder(theirs, ns),
        );
      }),
      { numRuns: RUNS },
    );
  });

  it('a permission that covers a subscription allows every channel or key it receives', () => {
    fc.assert(
      fc.property(
        patternText,
        patternText,
        fc.array(subjectText(true), { maxLength: 20 }),
        fc.boolean(),
        (wideText, narrowText, subjects, reserved) => {
          const rules = reserved ? CHANNELS : KEY_PATTERN_RULES;
          const wide = parsePattern(wideText, rules);
          const narrow = parsePattern(narrowText, rules);
          if (wide instanceof PatternError || narrow instanceof PatternError) return;
          if (!new PathPattern(wideText).covers(new PathPattern(narrowText), reserved)) return;
          for (const subject of [...subjects, instance(narrow, ['a', '$x'])]) {
            const path = canonical(subject, reserved);
            if (path === undefined || !matches(narrow, path, rules)) continue;
            expect(matches(wide, path, rules), `${wideText} covers ${narrowText} but not ${path}`).toBe(true);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});
