import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  channelRules,
  KEY_PATTERN_RULES,
  matches,
  matchesUnder,
  type Pattern,
  PatternError,
  parseChannel,
  parsePattern,
} from './pattern.js';

const CHANNELS = channelRules();

function pattern(text: string, rules = CHANNELS): Pattern {
  const p = parsePattern(text, rules);
  if (p instanceof PatternError) throw new Error(p.message);
  return p;
}

function refusal(result: unknown): string {
  expect(result).toBeInstanceOf(PatternError);
  return (result as PatternError).message;
}

/**
 * The naive oracle: a regular expression per pattern, written independently of `matches`.
 * `*` is one segment, a final `>` is one or more; reserved channels only for a literal first segment.
 */
function naive(patternText: string, channel: string, reserved: boolean): boolean {
  const segs = patternText.split('^');
  if (reserved && channel.startsWith('$') && (segs[0] === '*' || segs[0] === '>')) return false;
  const quoteRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const body = segs
    .map((s, i) => {
      if (s === '*') return '[^^]+';
      if (s === '>' && i === segs.length - 1) return '[^^]+(\\^[^^]+)*';
      return quoteRegex(s);
    })
    .join('\\^');
  return new RegExp(`^${body}$`, 's').test(channel);
}

// Small alphabets so that random patterns and channels actually meet.
const segment = fc.constantFrom('a', 'b', 'c', 'news', '$sys', '$x', 'é', 'a*b');
const channel = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('^'));
const patternText = fc
  .tuple(fc.array(fc.oneof(segment, fc.constant('*')), { minLength: 0, maxLength: 4 }), fc.boolean())
  .filter(([segs, rest]) => segs.length > 0 || rest)
  .map(([segs, rest]) => [...segs, ...(rest ? ['>'] : [])].join('^'));

describe('parsePattern', () => {
  it('canonicalizes and flags wildcards', () => {
    expect(pattern('^news^*')).toEqual({ text: 'news^*', segments: ['news', '*'], wildcard: true });
    expect(pattern('orders^eu^>')).toMatchObject({ text: 'orders^eu^>', wildcard: true });
    expect(pattern('news^eu')).toMatchObject({ text: 'news^eu', wildcard: false });
    // Wildcards are whole segments only.
    expect(pattern('a*b^c>')).toMatchObject({ wildcard: false });
    expect(pattern('>')).toMatchObject({ segments: ['>'], wildcard: true });
  });

  it('refuses malformed patterns with messages that name the field and the fault', () => {
    expect(refusal(parsePattern('', CHANNELS, 'channels[0]'))).toBe(
      'channels[0]: must not be empty (give a channel such as "news^>")',
    );
    expect(refusal(parsePattern('^', CHANNELS))).toMatch(/^pattern: must not be empty/);
    expect(refusal(parsePattern('a^^b', CHANNELS))).toBe(
      'pattern: empty segment at position 2 in "a^^b" (segments are joined by ^ and must not be empty)',
    );
    expect(refusal(parsePattern('a^', CHANNELS))).toMatch(/empty segment at position 2/);
    expect(refusal(parsePattern('^^a', CHANNELS))).toMatch(/empty segment at position 1/);
    expect(refusal(parsePattern('a^>^b', CHANNELS))).toBe(
      'pattern: ">" must be the last segment (it matches every remaining segment), but "a^>^b" has it at segment 2',
    );
    expect(refusal(parsePattern('a^b\nc', CHANNELS))).toBe(
      'pattern: control character U+000A in segment 2 of "a^b\\nc" (not allowed in channel names)',
    );
    expect(refusal(parsePattern('x'.repeat(257), CHANNELS))).toBe(
      'pattern: longer than 256 characters (got 257)',
    );
    expect(refusal(parsePattern(Array(33).fill('a').join('^'), CHANNELS))).toBe(
      'pattern: deeper than 32 segments (got 33)',
    );
    expect(refusal(parsePattern('users^\u007f', KEY_PATTERN_RULES, 'keys[1]'))).toMatch(
      /^keys\[1\]: control character U\+007F .* \(not allowed in key names\)$/,
    );
  });

  it('applies the configured channel length and the key limits', () => {
    expect(parsePattern('x'.repeat(20), channelRules(10))).toBeInstanceOf(PatternError);
    expect(parsePattern('x'.repeat(1024), KEY_PATTERN_RULES)).not.toBeInstanceOf(PatternError);
    expect(parsePattern('x'.repeat(1025), KEY_PATTERN_RULES)).toBeInstanceOf(PatternError);
  });
});

describe('parseChannel', () => {
  it('accepts concrete names and strips the leading caret', () => {
    expect(parseChannel('^news^eu', CHANNELS)).toBe('news^eu');
    expect(parseChannel('a*b^>>', CHANNELS)).toBe('a*b^>>');
  });

  it('refuses wildcard segments: a published channel is always concrete', () => {
    expect(refusal(parseChannel('news^*', CHANNELS))).toBe(
      'channel: "*" is a wildcard, for subscribing; a channel to publish to names every segment (segment 2 of "news^*")',
    );
    expect(refusal(parseChannel('>', CHANNELS))).toMatch(/">" is a wildcard/);
    expect(refusal(parseChannel('a^^b', CHANNELS))).toMatch(/empty segment/);
  });
});

describe('matches', () => {
  it.each([
    ['news^*', 'news^eu', true],
    ['news^*', 'news', false],
    ['news^*', 'news^eu^fr', false],
    ['orders^eu^>', 'orders^eu^1', true],
    ['orders^eu^>', 'orders^eu^1^lines', true],
    ['orders^eu^>', 'orders^eu', false],
    ['*^eu', 'news^eu', true],
    ['>', 'a', true],
    ['>', 'a^b^c', true],
    ['a^b', 'a^b', true],
    ['a^b', 'a^c', false],
  ])('%s vs %s -> %s', (p, c, expected) => {
    expect(matches(pattern(p), c, CHANNELS)).toBe(expected);
  });

  it('never lets a leading wildcard reach a reserved ($) channel', () => {
    expect(matches(pattern('>'), '$sys^shutdown', CHANNELS)).toBe(false);
    expect(matches(pattern('*^shutdown'), '$sys^shutdown', CHANNELS)).toBe(false);
    expect(matches(pattern('*^>'), '$SYS^shutdown', CHANNELS)).toBe(false);
    expect(matches(pattern('$sys^>'), '$sys^shutdown', CHANNELS)).toBe(true);
    expect(matches(pattern('$sys^*'), '$sys^shutdown', CHANNELS)).toBe(true);
    // Keys have no reserved prefix.
    expect(matches(pattern('>', KEY_PATTERN_RULES), '$sys^x', KEY_PATTERN_RULES)).toBe(true);
  });

  it('agrees with a naive regular-expression matcher (property)', () => {
    fc.assert(
      fc.property(patternText, channel, fc.boolean(), (p, c, reserved) => {
        const rules = reserved ? CHANNELS : KEY_PATTERN_RULES;
        expect(matches(pattern(p, rules), c, rules)).toBe(naive(p, c, reserved));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('matchesUnder', () => {
  it.each([
    ['users^>', 'users', true],
    ['users^*', 'users', true],
    ['users^42', 'users', true],
    ['users^*^name', 'users', true],
    ['*^42', 'users', true],
    ['>', 'users', true],
    ['users', 'users', false],
    ['posts^>', 'users', false],
    ['users^>', 'users^42', true],
    ['users^*', 'users^42', false],
    ['a', '', true],
  ])('%s could match a key below %s -> %s', (p, ns, expected) => {
    expect(matchesUnder(pattern(p, KEY_PATTERN_RULES), ns)).toBe(expected);
  });

  it('is true exactly when some key below the namespace matches (property)', () => {
    const namespace = fc.array(segment, { minLength: 0, maxLength: 3 }).map((s) => s.join('^'));
    fc.assert(
      fc.property(patternText, namespace, (p, ns) => {
        const pat = pattern(p, KEY_PATTERN_RULES);
        const nsSegs = ns === '' ? [] : ns.split('^');
        // The best candidates: the namespace, then the pattern's own literal segments (or `x`).
        let some = false;
        for (let length = nsSegs.length + 1; length <= nsSegs.length + pat.segments.length + 1; length++) {
          const key = [...nsSegs];
          for (let i = nsSegs.length; i < length; i++) {
            const s = pat.segments[i];
            key.push(s === undefined || s === '*' || s === '>' ? 'x' : s);
          }
          if (naive(p, key.join('^'), false)) some = true;
        }
        expect(matchesUnder(pat, ns)).toBe(some);
      }),
      { numRuns: 3000 },
    );
  });
});
