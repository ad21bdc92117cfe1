/**
 * The Redis Cluster engine's key layout (src/store/redis/keys.ts) against a real 3-master cluster:
 * the slots Redis computes are the ones the layout promises, one Lua script may touch a top-level
 * namespace's values, indexes and counters together (and not two namespaces'), and ZRANGEBYLEX
 * over encoded names pages in caretkv's order. The design points of issue 16, checked on Redis
 * itself before the engine is built on them.
 */
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeUnits, encodeUnits, KeyLayout, slotOf } from '../src/store/redis/keys.js';
import { NO_REDIS, type RedisCluster, redisAvailable, startRedisCluster } from './helpers/redis.js';

describe('Redis Cluster key layout, on a real cluster', () => {
  let cluster: RedisCluster | undefined;
  let client: Cluster | undefined;
  const layout = new KeyLayout('test:');

  beforeAll(async () => {
    if (!redisAvailable()) return;
    cluster = await startRedisCluster({ masters: 3 });
    client = new Cluster([...cluster.seeds], { lazyConnect: false });
    await client.ping();
  }, 60_000);

  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  const need = (ctx: { skip: (note: string) => void }): Cluster => {
    if (client === undefined) ctx.skip(NO_REDIS);
    return client!;
  };

  it('Redis puts each key in the slot the layout computes, one slot per top-level namespace', async (ctx) => {
    const redis = need(ctx);
    const tops = ['users', 'a}b', '{x}', '%7D', 'é', '\u{1F600}', 'lone\ud800'];
    for (const top of tops) {
      const keys = [
        layout.value(`${top}^42^name`),
        layout.value(top),
        layout.keyIndex(`${top}^42`),
        layout.childIndex(top),
        layout.counters(top),
      ];
      const slots = new Set<number>();
      for (const key of keys) {
        const slot = Number(await redis.cluster('KEYSLOT', key));
        expect(slot, JSON.stringify(top)).toBe(slotOf(key));
        slots.add(slot);
      }
      expect(slots.size, JSON.stringify(top)).toBe(1);
    }
  });

  it('one script updates a namespace’s value, index and counter together; two namespaces are refused', async (ctx) => {
    const redis = need(ctx);
    const script = `
      redis.call('SET', KEYS[1], ARGV[1])
      redis.call('ZADD', KEYS[2], 0, ARGV[2])
      return redis.call('HINCRBY', KEYS[3], ARGV[3], 1)`;
    const keys = [layout.value('shop^item'), layout.keyIndex('shop'), layout.counters('shop')];
    expect(await redis.eval(script, 3, ...keys, '"v"', encodeUnits('item'), encodeUnits('shop'))).toBe(1);
    expect(await redis.getBuffer(keys[0]!)).toEqual(Buffer.from('"v"'));
    const crossing = [layout.value('shop^a'), layout.keyIndex('users'), layout.counters('shop')];
    expect(slotOf(crossing[0]!)).not.toBe(slotOf(crossing[1]!)); // 'shop' and 'users' hash apart
    await expect(redis.eval(script, 3, ...crossing, '1', 'a', 'shop')).rejects.toThrow(/CROSSSLOT/);
  });

  it('ZRANGEBYLEX over encoded names pages in UTF-16 code unit order (not UTF-8 order)', async (ctx) => {
    const redis = need(ctx);
    const names = ['b', 'a', '\uffff', '\u{1F600}', 'é', 'Z', '\ud800', 'aa', '\ue000'];
    const index = layout.keyIndex('order');
    await redis.zadd(index, ...names.flatMap((n) => [0, encodeUnits(n)]));
    const all = (await redis.zrangebylexBuffer(index, '-', '+')).map((b) => decodeUnits(b));
    expect(all).toEqual([...names].sort());
    // Paging after a name: exclusive range start, as KEYS' `after` needs.
    const after = Buffer.concat([Buffer.from('('), encodeUnits('\u{1F600}')]);
    const rest = (await redis.zrangebylexBuffer(index, after, '+', 'LIMIT', 0, 2)).map((b) => decodeUnits(b));
    const sorted = [...names].sort();
    const at = sorted.indexOf('\u{1F600}');
    expect(rest).toEqual(sorted.slice(at + 1, at + 3));
  });
});
