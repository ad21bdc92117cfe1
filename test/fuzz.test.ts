/**
 * A bounded run of the protocol fuzzer (scripts/fuzz.ts) against a measured server process, plus
 * checks of the oracle it judges the server by. The seed is printed on failure; reproduce with
 * `FUZZ_SEED=<seed> npx vitest run test/fuzz.test.ts` or `npm run fuzz -- --seed <seed>`.
 */
import { describe, expect, it } from 'vitest';
import { FUZZ_MAX_LINE_BYTES, frame, frameLines, judge, oracle, runFuzz } from '../scripts/fuzz.js';
import { Rng } from '../scripts/harness.js';

const lines = (text: string, fin = true) =>
  frameLines(Buffer.from(text), fin, 8).map((l) => (l === null ? null : l.toString()));

describe('the fuzzer oracle', () => {
  it('frames like the server: LF splits, one trailing CR goes, blank lines vanish, long lines are one error', () => {
    expect(lines('a\nb\r\n\n\r\nc')).toEqual(['a', 'b', 'c']);
    expect(lines('a\nb', false)).toEqual(['a']);
    expect(lines('123456789\n12345678\r\n')).toEqual([null, '12345678']);
    expect(lines('x\r\r\n')).toEqual(['x\r']);
  });

  it('judges exact errors for refused lines and documented codes for dispatched ones', () => {
    const refused = oracle(Buffer.from('{"action":"nope","id":3}'));
    expect(judge(refused, '{"id":3,"ok":false,"error":{"code":"UNKNOWN_ACTION","message":"x"}}')).toMatch(
      /message/,
    );
    const get = oracle(Buffer.from('{"action":"get","key":"a","id":"q"}'));
    expect(get).toMatchObject({ kind: 'dispatched', action: 'GET', id: 'q' });
    expect(judge(get, '{"id":"q","ok":false,"error":{"code":"KEY_NOT_FOUND","message":"m"}}')).toBeNull();
    expect(judge(get, '{"id":"q","ok":false,"error":{"code":"INTERNAL","message":"m"}}')).toMatch(/may not/);
    expect(judge(get, '{"ok":true,"result":1}')).toMatch(/^id /);
    const echo = oracle(Buffer.from('{"action":"ECHO","value":[1,{"a":null}]}'));
    expect(judge(echo, '{"ok":true,"result":[1,{"a":null}]}')).toBeNull();
    expect(judge(echo, '{"ok":true,"result":[1,{"a":0}]}')).toMatch(/ECHO/);
    expect(judge(oracle(null), '{"ok":false,"error":{"code":"LINE_TOO_LONG","message":"m"}}')).toBeNull();
  });

  it('generates every kind of frame from one seed, reproducibly', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const frames = Array.from({ length: 2000 }, () => frame(a));
    expect(frames.map((f) => f.toString('hex'))).toEqual(
      Array.from({ length: 2000 }, () => frame(b).toString('hex')),
    );
    const outcomes = new Set(
      frames.flatMap((f) =>
        frameLines(Buffer.concat([f, Buffer.from('\n')]), true, FUZZ_MAX_LINE_BYTES).map((l) => {
          const e = oracle(l);
          return e.kind === 'dispatched' ? 'dispatched' : e.code;
        }),
      ),
    );
    for (const kind of [
      'dispatched',
      'BAD_JSON',
      'BAD_REQUEST',
      'UNKNOWN_ACTION',
      'TOO_DEEP',
      'LINE_TOO_LONG',
    ]) {
      expect(outcomes).toContain(kind);
    }
  });
});

describe('fuzzing a real server', () => {
  it('survives a bounded run: every answer right, canaries intact, INFO adds up, memory back near baseline', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const report = await runFuzz({ frames: 25_000, seconds: 10, connections: 24, seed, churn: 2000 });
    const context = `seed ${seed}: ${JSON.stringify(report.failures, null, 2)}`;
    expect(report.failures, context).toEqual([]);
    // The run did what it claims: sessions of both kinds, and clean answers checked.
    expect(report.counts.cleanSessions, context).toBeGreaterThan(10);
    expect(report.counts.abruptSessions, context).toBeGreaterThan(0);
    expect(report.counts.responses, context).toBeGreaterThan(1000);
    expect(report.churn?.cycles).toBe(2000);
    expect(report.final!.fds, context).toBe(report.baseline!.fds);
  }, 90_000);
});
