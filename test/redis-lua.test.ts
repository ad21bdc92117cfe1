/**
 * The Lua helpers the Redis Cluster engine's INCR and CAS scripts run inside Redis
 * (src/store/redis/lua.ts), checked on a real redis-server against the in-memory engine's own
 * rules: JSON equality against store/json-equal.ts, number text against JavaScript's String(n).
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonTextEqual } from '../src/store/json-equal.js';
import { LUA_JS_NUMBER, LUA_JSON } from '../src/store/redis/lua.js';
import { NO_REDIS, type RedisServer, redisAvailable, startRedisServer } from './helpers/redis.js';

/** The same JSON value with every object's members in another order. */
function shuffled(value: unknown, rng: () => number): unknown {
  if (Array.isArray(value)) return value.map((v) => shuffled(v, rng));
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value).map(([k, v]) => [k, shuffled(v, rng)] as const);
  for (let i = entries.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  return Object.fromEntries(entries);
}

describe('Lua helpers of the cluster engine, on a real redis-server', () => {
  let server: RedisServer | undefined;
  let redis: Redis | undefined;

  beforeAll(async () => {
    if (!redisAvailable()) return;
    server = await startRedisServer();
    redis = new Redis({ host: server.host, port: server.port });
  }, 30_000);

  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  const need = (ctx: { skip: (note: string) => void }): Redis => {
    if (redis === undefined) ctx.skip(NO_REDIS);
    return redis!;
  };

  it('js_number writes every finite number as JavaScript does', async (ctx) => {
    const r = need(ctx);
    const special = [
      0,
      -0,
      1,
      -1,
      0.1,
      0.30000000000000004,
      1e21,
      1e-7,
      1e-6,
      123456789012345680000,
      2 ** 53 - 1,
    ];
    const sample = [
      ...special,
      ...special.map((n) => -n),
      ...fc.sample(fc.double({ noNaN: true, noDefaultInfinity: true }), { numRuns: 3000, seed: 16 }),
      ...fc.sample(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), { numRuns: 500, seed: 17 }),
    ];
    // Sent with 17 significant digits (always exact), so the Lua side cannot just echo JS's text.
    const script = `${LUA_JS_NUMBER}
      local out = {}
      for i = 1, #ARGV do out[i] = js_number(tonumber(ARGV[i])) end
      return out`;
    const got = (await r.eval(script, 0, ...sample.map((n) => n.toPrecision(17)))) as string[];
    for (let i = 0; i < sample.length; i++)
      expect(got[i], sample[i]!.toPrecision(17)).toBe(String(sample[i]));
  });

  it('json_equal agrees with the in-memory engine on equal, reordered and different values', async (ctx) => {
    const r = need(ctx);
    const script = `${LUA_JSON}
      local out = {}
      for i = 1, #ARGV, 2 do out[#out + 1] = json_equal(ARGV[i], ARGV[i + 1]) and 1 or 0 end
      return out`;
    const value = fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' });
    const pairs = fc.sample(
      fc.oneof(
        // Equal, members reordered (the case text comparison gets wrong).
        fc.tuple(value, fc.integer()).map(([v, seed]) => {
          let s = seed;
          const rng = (): number => {
            s = (s * 1103515245 + 12345) & 0x7fffffff;
            return s / 0x80000000;
          };
          return [v, shuffled(v, rng)] as const;
        }),
        // Usually different.
        fc.tuple(value, value),
        // Near misses: one member more, [] against {}, 1 against "1", null against false.
        fc.constantFrom(
          [[], {}],
          [{ a: [] }, { a: {} }],
          [1, '1'],
          [null, false],
          [{ a: 1 }, { a: 1, b: 2 }],
          [
            [1, 2],
            [2, 1],
          ],
          [{ '\\': 1 }, { '\\\\': 1 }],
          [1, 1.0],
          ['é', '\u00e9'],
          [{ a: { b: [1, { c: null }] } }, { a: { b: [1, { c: null }] } }],
        ) as fc.Arbitrary<readonly [unknown, unknown]>,
      ),
      { numRuns: 1500, seed: 18 },
    );
    const texts = pairs.flatMap(([a, b]) => [JSON.stringify(a), JSON.stringify(b)]);
    const got = (await r.eval(script, 0, ...texts)) as number[];
    let equal = 0;
    for (let i = 0; i < pairs.length; i++) {
      const [a, b] = [texts[2 * i]!, texts[2 * i + 1]!];
      const expected = jsonTextEqual(a, b);
      if (expected) equal++;
      expect(got[i] === 1, `${a} vs ${b}`).toBe(expected);
    }
    expect(equal).toBeGreaterThan(300); // both answers are well represented
    expect(pairs.length - equal).toBeGreaterThan(300);
  });
});
