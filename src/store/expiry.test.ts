import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyExpiry } from './expiry.js';

/** Takes every entry out in heap order (earliest first), as the sweep does. */
function drain(expiry: KeyExpiry): number[] {
  const times: number[] = [];
  while (expiry.size > 0) {
    times.push(expiry.peekTime());
    expiry.delete(expiry.peekKey());
  }
  return times;
}

describe('KeyExpiry', () => {
  it('filled unordered (a replay), then removeDue: the due keys out, the rest a valid heap (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 100 })), {
          maxLength: 60,
        }),
        fc.integer({ min: 0, max: 100 }),
        (sets, now) => {
          const expiry = new KeyExpiry();
          const model = new Map<string, number>();
          for (const [k, time] of sets) {
            expiry.setUnordered(`k${k}`, time);
            model.set(`k${k}`, time);
          }
          const due = expiry.removeDue(now);
          const expectedDue = [...model].filter(([, t]) => t <= now).map(([k]) => k);
          expect(due.sort()).toEqual(expectedDue.sort());
          for (const [k, t] of model) expect(expiry.timeOf(k)).toBe(t <= now ? undefined : t);
          const left = [...model.values()].filter((t) => t > now).sort((a, b) => a - b);
          expect(drain(expiry)).toEqual(left);
        },
      ),
    );
  });
});
