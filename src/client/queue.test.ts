import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingQueue } from './queue.js';

describe('RingQueue', () => {
  it('keeps FIFO order across growth and wrap-around', () => {
    const q = new RingQueue<number>(4);
    for (let i = 0; i < 3; i++) q.push(i);
    expect(q.shift()).toBe(0);
    for (let i = 3; i < 100; i++) q.push(i);
    const out: number[] = [];
    while (q.length > 0) out.push(q.shift()!);
    expect(out).toEqual(Array.from({ length: 99 }, (_, i) => i + 1));
    expect(q.shift()).toBeUndefined();
    expect(q.peek()).toBeUndefined();
  });

  it('behaves like an array under any sequence of operations', () => {
    type Op = { op: 'push' | 'unshift'; v: number } | { op: 'shift' | 'pop' | 'drain' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constantFrom('push' as const, 'unshift' as const), v: fc.integer() }),
      fc.record({ op: fc.constantFrom('shift' as const, 'pop' as const, 'drain' as const) }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 300 }), (ops) => {
        const q = new RingQueue<number>(4);
        const model: number[] = [];
        for (const o of ops) {
          if (o.op === 'push') {
            q.push(o.v);
            model.push(o.v);
          } else if (o.op === 'unshift') {
            q.unshift(o.v);
            model.unshift(o.v);
          } else if (o.op === 'shift') {
            expect(q.shift()).toBe(model.shift());
          } else if (o.op === 'pop') {
            expect(q.pop()).toBe(model.pop());
          } else {
            expect(q.drain()).toEqual(model.splice(0));
          }
          expect(q.length).toBe(model.length);
          expect(q.peek()).toBe(model[0]);
          for (let i = 0; i < model.length; i++) expect(q.at(i)).toBe(model[i]);
          expect(q.at(model.length)).toBeUndefined();
        }
      }),
    );
  });
});
