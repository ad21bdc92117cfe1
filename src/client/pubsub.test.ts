import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  KEY_PATTERN_RULES,
  parsePattern,
  matches as serverMatches,
  matchesUnder as serverMatchesUnder,
} from '../pubsub/pattern.js';
import { keyMatches, matchesUnder } from './pubsub.js';

/** Small alphabets so that patterns and keys often meet. */
const segment = fc.constantFrom('a', 'b', 'users', '42');
const key = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('^'));
const pattern = fc
  .tuple(fc.array(fc.oneof(segment, fc.constant('*')), { minLength: 0, maxLength: 4 }), fc.boolean())
  .filter(([segs, rest]) => segs.length > 0 || rest)
  .map(([segs, rest]) => (rest ? [...segs, '>'] : segs).join('^'));

describe("the client's key matcher routes change pushes exactly as the server chose them", () => {
  it('agrees with pattern.ts matches() and matchesUnder()', () => {
    fc.assert(
      fc.property(pattern, key, (p, k) => {
        const parsed = parsePattern(p, KEY_PATTERN_RULES);
        if (!('segments' in parsed)) throw new Error(parsed.message);
        expect(keyMatches(parsed.segments, k)).toBe(serverMatches(parsed, k, KEY_PATTERN_RULES));
        expect(matchesUnder(parsed.segments, k)).toBe(serverMatchesUnder(parsed, k));
      }),
      { numRuns: 2000 },
    );
  });
});
