import { describe, expect, it } from 'vitest';
import { parseMix } from './options.js';
import { RespCounter } from './replies.js';
import { buildRing, KeySpace } from './workload.js';

function slots(ring: ReturnType<typeof buildRing>): string[] {
  const bytes = Buffer.from(ring.bytes);
  const offsets = new Int32Array(ring.offsets);
  return Array.from({ length: ring.count }, (_, i) => bytes.toString('latin1', offsets[i], offsets[i + 1]));
}

describe('KeySpace', () => {
  it('spreads fixed-width keys over namespaces of 1000, counters apart from data', () => {
    const keys = new KeySpace(100_000);
    expect(keys.key(0)).toBe('bench^d00^k00000');
    expect(keys.key(42_137)).toBe('bench^d42^k42137');
    expect(keys.key(99_999, true)).toBe('bench^c99^k99999');
    expect(new KeySpace(1).key(0)).toBe('bench^d0^k0');
  });
});

describe('buildRing', () => {
  it('encodes one caretkv request per slot in the asked mix, with values of the asked size', () => {
    const ring = buildRing({
      target: 'caretkv',
      mix: parseMix('SET:1,GET:1,INCR,PING', '1:1'),
      keyspace: 5000,
      valueSize: 7,
      minSlots: 1,
    });
    const requests = slots(ring).map((line) => {
      expect(line.endsWith('\n')).toBe(true);
      return JSON.parse(line) as { action: string; key?: string; value?: string };
    });
    const counts: Record<string, number> = {};
    for (const r of requests) {
      counts[r.action] = (counts[r.action] ?? 0) + 1;
      if (r.action === 'SET') expect(r.value).toBe('xxxxxxx');
      if (r.action === 'INCR') expect(r.key).toMatch(/^bench\^c\d\^k\d{4}$/);
      if (r.action === 'GET' || r.action === 'SET') expect(r.key).toMatch(/^bench\^d\d\^k\d{4}$/);
    }
    // 65536 slots at least; each action near a quarter.
    expect(requests.length).toBeGreaterThanOrEqual(65_536);
    for (const action of ['SET', 'GET', 'INCR', 'PING']) {
      expect(counts[action]! / requests.length).toBeCloseTo(0.25, 1);
    }
  });

  it('encodes redis requests as RESP arrays a RESP parser reads back one by one', () => {
    const ring = buildRing({
      target: 'redis',
      mix: parseMix(undefined, '1:3'),
      keyspace: 100,
      valueSize: 3,
      minSlots: 1,
    });
    const lines = slots(ring);
    expect(
      lines.filter((l) => l.startsWith('*3\r\n$3\r\nSET\r\n$12\r\nbench^d0^k')).length / lines.length,
    ).toBeCloseTo(0.25, 1);
    expect(lines.every((l) => /^\*[23]\r\n\$3\r\n(SET|GET)\r\n\$12\r\nbench\^d0\^k\d\d\r\n/.test(l))).toBe(
      true,
    );
    // Requests are arrays of bulk strings, so the reply parser can count them too.
    expect(new RespCounter(new Map()).feed(Buffer.from(ring.bytes))).toBe(ring.count);
  });

  it('keeps big values affordable by shrinking the ring, never below what a pipeline needs', () => {
    const ring = buildRing({
      target: 'caretkv',
      mix: parseMix('SET', '1:0'),
      keyspace: 100_000,
      valueSize: 1_000_000,
      minSlots: 32,
      maxBytes: 8 * 1024 * 1024,
    });
    expect(ring.count).toBe(32);
  });
});

describe('parseMix', () => {
  it('takes SET/GET weights from --ratio unless --actions gives them', () => {
    expect(parseMix(undefined, '1:9')).toEqual({ SET: 1, GET: 9, INCR: 0, PING: 0 });
    expect(parseMix('set,get,incr', '2:1')).toEqual({ SET: 2, GET: 1, INCR: 1, PING: 0 });
    expect(parseMix('PING:3,GET:1', '1:1')).toEqual({ SET: 0, GET: 1, INCR: 0, PING: 3 });
  });

  it('names the option in every refusal', () => {
    expect(() => parseMix('SET,DEL', '1:1')).toThrow(/--actions: unknown action 'DEL'/);
    expect(() => parseMix('SET,SET', '1:1')).toThrow(/--actions: SET is listed twice/);
    expect(() => parseMix('SET:0', '1:1')).toThrow(/--actions: the mix is empty/);
    expect(() => parseMix(undefined, '0:0')).toThrow(/--ratio/);
    expect(() => parseMix(undefined, 'half')).toThrow(/--ratio: expected set:get/);
  });
});
