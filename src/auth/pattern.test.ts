/** Agreement with pub/sub's matcher (the owner of the rules) is in pattern-agreement.test.ts. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PathPattern, PatternSet, PatternSyntaxError } from './pattern.js';

const segment = fc.constantFrom('a', 'b', 'news', '$sys', '$x', 'é', 'a*b');
const path = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('^'));
const patternText = fc
  .tuple(fc.array(fc.oneof(segment, fc.constant('*')), { minLength: 0, maxLength: 4 }), fc.boolean())
  .filter(([segs, rest]) => segs.length > 0 || rest)
  .map(([segs, rest]) => [...segs, ...(rest ? ['>'] : [])].join('^'));

describe('PathPattern', () => {
  it('covers only what it really covers: every path the narrower pattern matches, the wider does', () => {
    fc.assert(
      fc.property(
        patternText,
        patternText,
        fc.array(path, { maxLength: 30 }),
        fc.boolean(),
        (a, b, paths, reserved) => {
          const wide = new PathPattern(a);
          const narrow = new PathPattern(b);
          if (!wide.covers(narrow, reserved)) return;
          for (const p of paths) {
            if (narrow.matches(p, reserved))
              expect(wide.matches(p, reserved), `${a} ⊇ ${b} at ${p}`).toBe(true);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it.each([
    ['>', 'app^>', true],
    ['app^>', 'app^>', true],
    ['app^>', 'app^*', true],
    ['app^>', 'app^x^>', true],
    ['app^*', 'app^>', false],
    ['app^*', 'app^x', true],
    ['app^x', 'app^*', false],
    ['app^>', 'app', false],
    ['app^>', '>', false],
    ['*^>', 'a^b', true],
  ])('%s covers %s: %s', (wide, narrow, expected) => {
    expect(new PathPattern(wide).covers(new PathPattern(narrow))).toBe(expected);
  });

  it('keeps $-channels out of reach of wildcard-first patterns', () => {
    expect(new PathPattern('>').matches('$sys^shutdown', true)).toBe(false);
    expect(new PathPattern('>').matches('$sys^shutdown', false)).toBe(true);
    expect(new PathPattern('$sys^>').matches('$sys^shutdown', true)).toBe(true);
    expect(new PathPattern('>').covers(new PathPattern('$sys^>'), true)).toBe(false);
    expect(new PatternSet(['>']).matches('$sys^x', true)).toBe(false);
  });

  it('refuses malformed patterns with a reason', () => {
    for (const bad of ['', '^', 'a^^b', 'a^>^b', 'a^', 'a\u0001']) {
      expect(() => new PathPattern(bad), JSON.stringify(bad)).toThrow(PatternSyntaxError);
    }
    // The config loader prefixes the field (`users.app.read[0]: ...`), so the message carries none.
    expect(() => new PathPattern('a^^b')).toThrow(/^empty segment at position 2 in "a\^\^b"/);
    expect(() => new PathPattern('a^>^b')).toThrow(/^">" must be the last segment/);
  });

  it('sets no length or depth limit of its own (one permission guards keys and channels)', () => {
    const deep = Array.from({ length: 40 }, () => 'abcdefghijklmnopqrstuvwxyz').join('^');
    expect(new PathPattern(`${deep}^>`).matches(`${deep}^x`)).toBe(true);
  });
});
