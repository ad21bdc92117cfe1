/**
 * The Redis Cluster engine (src/store/redis/engine.ts), on a real 3-master
 * cluster: values, conditional writes, TTLs, listings and counts, through two engine instances
 * (two caretkv nodes) sharing the cluster. The Store contract suite runs against it in
 * redis-contract.test.ts.
 */
import { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/store/redis/engine.js';
import type { ChangeOp, JsonText, Page } from '../src/store/store.js';
import { waitFor } from './helpers/net.js';
import { NO_REDIS, type RedisCluster, redisAvailable, startRedisCluster } from './helpers/redis.js';

async function all(
  list: (after: string | undefined, limit: number) => Promise<Page>,
  limit = 2,
): Promise<string[]> {
  const names: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await list(after, limit);
    expect(page.names.length).toBeLessThanOrEqual(limit);
    names.push(...page.names);
    if (page.next === null) return names;
    expect(page.next).toBe(page.names[page.names.length - 1]);
    after = page.next;
  }
}

describe('Redis Cluster engine, on a real cluster', () => {
  let cluster: RedisCluster | undefined;
  const stores: RedisStore[] = [];
  let prefixes = 0;

  beforeAll(async () => {
    if (!redisAvailable()) return;
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  /** Two nodes over the cluster, with a prefix of their own (so tests do not see each other's keys). */
  const nodes = (ctx: { skip: (note: string) => void }): [RedisStore, RedisStore] => {
    if (cluster === undefined) ctx.skip(NO_REDIS);
    const prefix = `t${prefixes++}:`;
    const make = (): RedisStore => {
      const store = new RedisStore({ client: new Cluster([...cluster!.seeds]), prefix });
      stores.push(store);
      return store;
    };
    return [make(), make()];
  };

  it('a write on one node is read on the other, for any name', async (ctx) => {
    const [a, b] = nodes(ctx);
    const keys = ['solo', 'users^42^name', 'a}b^{x}', '\u{1F600}^\ud800', 'é^%7D'];
    for (const [i, key] of keys.entries()) expect(await a.set(key, JSON.stringify(i))).toBe(true);
    for (const [i, key] of keys.entries()) {
      expect(await b.get(key)).toBe(JSON.stringify(i));
      expect(await b.exists(key)).toBe(true);
    }
    expect(await b.mget([...keys, 'missing'])).toEqual([...keys.map((_, i) => String(i)), undefined]);
    expect(await b.del('users^42^name')).toBe(true);
    expect(await a.get('users^42^name')).toBeUndefined();
    expect(await a.del('users^42^name')).toBe(false);
  });

  it('conditional writes: ifAbsent only creates, ifPresent only overwrites', async (ctx) => {
    const [a] = nodes(ctx);
    expect(await a.set('k', '1', { ifPresent: true })).toBe(false);
    expect(await a.get('k')).toBeUndefined();
    expect(await a.set('k', '1', { ifAbsent: true })).toBe(true);
    expect(await a.set('k', '2', { ifAbsent: true })).toBe(false);
    expect(await a.set('k', '3', { ifPresent: true })).toBe(true);
    expect(await a.get('k')).toBe('3');
  });

  it('lists names in UTF-16 order, page by page, keys and namespaces apart, the root too', async (ctx) => {
    const [a, b] = nodes(ctx);
    const names = ['b', 'a', '\uffff', '\u{1F600}', 'é', 'Z', 'aa'];
    for (const n of names) await a.set(`ns^${n}`, '1');
    await a.set('ns^a^deep', '1'); // namespace ns^a beside key ns^a
    await a.set('ns^x^y^z', '1');
    await a.set('top', '1');
    await a.set('ns', '1'); // a root key named like the namespace
    expect(await all((after, limit) => b.keys('ns', after, limit))).toEqual([...names].sort());
    expect(await all((after, limit) => b.namespaces('ns', after, limit))).toEqual(['a', 'x']);
    expect(await all((after, limit) => b.namespaces('ns^x', after, limit))).toEqual(['y']);
    expect(await all((after, limit) => b.keys('', after, limit))).toEqual(['ns', 'top']);
    expect(await all((after, limit) => b.namespaces('', after, limit))).toEqual(['ns']);
    expect(await b.count('ns')).toBe(names.length + 2);
    expect(await b.count('ns^x')).toBe(1);
    expect(await b.count('')).toBe(names.length + 4);
  });

  it('a namespace disappears with its last key, up to the root', async (ctx) => {
    const [a, b] = nodes(ctx);
    await a.set('p^q^r', '1');
    await a.set('solo', '1');
    expect(await b.namespaces('', undefined, 10)).toEqual({ names: ['p'], next: null });
    await b.del('p^q^r');
    await b.del('solo');
    expect(await a.namespaces('', undefined, 10)).toEqual({ names: [], next: null });
    expect(await a.namespaces('p', undefined, 10)).toEqual({ names: [], next: null });
    expect(await a.keys('', undefined, 10)).toEqual({ names: [], next: null });
    expect(await a.count('')).toBe(0);
    expect(await a.count('p')).toBe(0);
  });

  it('TTLs are Redis’s own; listings and counts never show an expired key, and its expiry is heard once', async (ctx) => {
    const [a, b] = nodes(ctx);
    const events: [ChangeOp, string, JsonText | undefined][] = [];
    b.onChange((op, key, value) => events.push([op, key, value]));
    await a.set('t^gone', '1', { ttl: 50 });
    await a.set('t^kept', '1', { ttl: 60_000 });
    await a.set('brief', '1', { ttl: 50 });
    const ttl = (await a.ttl('t^kept')) as number;
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await a.persist('t^kept')).toBe(true);
    expect(await a.ttl('t^kept')).toBeNull();
    expect(await a.persist('t^kept')).toBe(false);
    await waitFor(async () => (await b.get('t^gone')) === undefined && (await b.get('brief')) === undefined, {
      message: 'Redis to expire the keys',
    });
    expect(await b.ttl('t^gone')).toBeUndefined();
    expect(await b.keys('t', undefined, 10)).toEqual({ names: ['kept'], next: null });
    expect(await b.count('t')).toBe(1);
    expect(await b.keys('', undefined, 10)).toEqual({ names: [], next: null });
    expect(await b.count('')).toBe(1);
    // b purged them, so it heard the expiries at once (a's writes reach it through Redis, any time).
    expect(events.filter(([op]) => op === 'expire')).toEqual([
      ['expire', 't^gone', undefined],
      ['expire', 'brief', undefined],
    ]);
    expect(await a.expire('t^gone', 1000)).toBe(false);
    expect(await a.expire('t^kept', 50)).toBe(true);
    await waitFor(async () => (await b.count('t')) === 0, { message: 'the expired key to leave the count' });
    expect(await b.namespaces('', undefined, 10)).toEqual({ names: [], next: null });
  });

  it('INCR and CAS run atomically in Redis and answer as the in-memory engine does', async (ctx) => {
    const [a, b] = nodes(ctx);
    expect(await a.incr('n^c', 2)).toBe(2);
    expect(await b.incr('n^c', 0.1)).toBe(2.1);
    expect(await a.get('n^c')).toBe('2.1');
    expect(await b.count('n')).toBe(1);
    await a.set('n^s', '"text"');
    await expect(a.incr('n^s', 1)).rejects.toMatchObject({
      code: 'WRONG_TYPE',
      message: expect.stringContaining('a string'),
    });
    await a.set('n^big', String(Number.MAX_SAFE_INTEGER - 1));
    await expect(b.incr('n^big', 2)).rejects.toMatchObject({ code: 'OVERFLOW' });
    expect(await a.get('n^big')).toBe(String(Number.MAX_SAFE_INTEGER - 1));
    await a.set('n^t', '1', { ttl: 60_000 });
    expect(await b.incr('n^t', 1)).toBe(2);
    expect((await a.ttl('n^t')) as number).toBeGreaterThan(50_000); // INCR keeps the TTL
    // CAS compares as JSON: members in any order, [] is not {}.
    await a.set('n^o', '{"a":1,"b":[]}');
    expect(await b.cas('n^o', '{"b":{},"a":1}', '1')).toBe(false);
    expect(await b.cas('n^o', '{"b":[],"a":1.0}', '"swapped"')).toBe(true);
    expect(await a.get('n^o')).toBe('"swapped"');
    expect(await b.cas('missing', 'null', '1')).toBe(false);
    expect(await b.cas('n^t', '2', '3')).toBe(true);
    expect(await a.ttl('n^t')).toBeNull(); // CAS drops the TTL
  });

  it('DROP removes a subtree in steps, counts what went, and leaves look-alikes alone', async (ctx) => {
    const [a, b] = nodes(ctx);
    // More keys than one step deletes, spread over nested namespaces.
    const keys: string[] = [];
    for (let i = 0; i < 1200; i++) keys.push(`big^${i % 3 === 0 ? `n${i % 7}^` : ''}k${i}`);
    for (let i = 0; i < keys.length; i += 200) {
      await Promise.all(keys.slice(i, i + 200).map((k) => a.set(k, '1')));
    }
    await a.set('big^gone', '1', { ttl: 50 });
    await a.set('big', '1'); // the key named like the namespace
    await a.set('bigger^x', '1'); // shares a prefix
    await a.set('other^big^x', '1');
    await waitFor(async () => (await b.get('big^gone')) === undefined, { message: 'the TTL to pass' });
    // Listening from here: a's own changes are heard at once, never again through Redis.
    const events: [ChangeOp, string, JsonText | undefined][] = [];
    a.onChange((op, key, value) => events.push([op, key, value]));
    expect(await a.drop('big')).toBe(1200); // not the expired key (b's read found it expired)
    // b's expiry of big^gone may reach a through Redis at any time; the drop a heard at once.
    expect(events.filter(([op]) => op !== 'expire')).toEqual([['drop', 'big', undefined]]);
    expect(await b.count('big')).toBe(0);
    expect(await b.get('big^k1')).toBeUndefined();
    expect(await b.namespaces('', undefined, 10)).toEqual({ names: ['bigger', 'other'], next: null });
    expect(await b.get('big')).toBe('1');
    expect(await b.count('')).toBe(3);
    expect(await a.drop('big')).toBe(0);
    expect(await a.drop('missing^ns')).toBe(0);
    // Usable again at once.
    await a.set('big^again', '1');
    expect(await b.keys('big', undefined, 10)).toEqual({ names: ['again'], next: null });
  });

  it('stats: keys, namespaces, keys with a TTL and expiries over every namespace', async (ctx) => {
    const [a, b] = nodes(ctx);
    await a.set('a', '1');
    await a.set('n^m^b', '1', { ttl: 60_000 });
    await a.set('n^c', '1');
    await a.set('x^y', '1', { ttl: 50 });
    await waitFor(async () => (await b.get('x^y')) === undefined, { message: 'the TTL to pass' });
    expect(await b.stats()).toEqual({ keys: 3, namespaces: 2, keysWithTtl: 1, expired: 1 });
  });

  it('each node hears every change, its own at once and the others’ through Redis, in order', async (ctx) => {
    const [a, b] = nodes(ctx);
    await Promise.all([a.subscribed, b.subscribed]);
    const heard = { a: [] as unknown[], b: [] as unknown[] };
    a.onChange((op, key, value) => heard.a.push([op, key, value]));
    b.onChange((op, key, value) => heard.b.push([op, key, value]));
    await a.set('e^k', '1');
    await a.incr('e^k', 2);
    await a.cas('e^k', '3', '"c"');
    await a.set('e^t', '1', { ttl: 30 });
    await waitFor(async () => (await a.get('e^t')) === undefined, { message: 'the TTL to pass' });
    await a.del('e^k');
    await a.set('e^\u{1F600}^\ud800', '{"v":[1]}');
    await a.drop('e');
    await a.del('missing'); // changes nothing: heard by nobody
    const expected = [
      ['set', 'e^k', '1'],
      ['incr', 'e^k', '3'],
      ['cas', 'e^k', '"c"'],
      ['set', 'e^t', '1'],
      ['expire', 'e^t', undefined],
      ['del', 'e^k', undefined],
      ['set', 'e^\u{1F600}^\ud800', '{"v":[1]}'],
      ['drop', 'e', undefined],
    ];
    await waitFor(() => heard.b.length >= expected.length, { message: 'node b to hear every change' });
    expect(heard.b).toEqual(expected);
    expect(heard.a).toEqual(expected); // once each: its own changes are not heard again from Redis
  });

  it('a key whose TTL runs out is heard by every node with nothing reading it (Redis expiry events)', async (ctx) => {
    const [a, b] = nodes(ctx);
    await Promise.all([a.subscribed, b.subscribed]);
    const heard = { a: [] as unknown[], b: [] as unknown[] };
    a.onChange((op, key) => heard.a.push([op, key]));
    b.onChange((op, key) => heard.b.push([op, key]));
    await a.set('quiet^k', '1', { ttl: 40 });
    await a.set('quiet^n^k', '1', { ttl: 40 });
    await a.set('quiet^stays', '1');
    // Only the listeners are polled: no read of the store could purge the keys.
    const expired = (list: unknown[]) => list.filter((e) => (e as string[])[0] === 'expire').length === 2;
    await waitFor(() => expired(heard.a) && expired(heard.b), {
      message: 'both nodes to hear both expiries',
      timeoutMs: 10_000,
    });
    expect(heard.b.filter((e) => (e as string[])[0] === 'expire').sort()).toEqual([
      ['expire', 'quiet^k'],
      ['expire', 'quiet^n^k'],
    ]);
    expect(await b.count('quiet')).toBe(1);
    expect(await b.namespaces('quiet', undefined, 10)).toEqual({ names: [], next: null });
  });

  it('MSET writes every entry of one top-level namespace or none; across namespaces it refuses', async (ctx) => {
    const [a, b] = nodes(ctx);
    await a.set('m^x', '0', { ttl: 60_000 });
    await a.mset([
      ['m^x', '1'],
      ['m^y^z', '2'],
      ['m', '3'.repeat(1)], // the key named like the namespace shares its slot
    ]);
    expect(await b.mget(['m^x', 'm^y^z', 'm'])).toEqual(['1', '2', '3']);
    expect(await b.ttl('m^x')).toBeNull();
    expect(await b.count('')).toBe(3);
    expect(await b.namespaces('m', undefined, 10)).toEqual({ names: ['y'], next: null });
    await expect(
      a.mset([
        ['m^x', '9'],
        ['other^k', '9'],
      ]),
    ).rejects.toMatchObject({ code: 'CROSS_NAMESPACE', message: expect.stringContaining('"other"') });
    expect(await b.get('m^x')).toBe('1');
    expect(await b.get('other^k')).toBeUndefined();
  });

  it('a backend that is down answers UNAVAILABLE, for reads and writes (never hangs)', async (ctx) => {
    if (cluster === undefined) ctx.skip(NO_REDIS);
    // A cluster of its own: this test kills it.
    const doomed = await startRedisCluster({ masters: 3 });
    try {
      const client = new Cluster([...doomed.seeds], {
        enableOfflineQueue: false,
        redisOptions: { commandTimeout: 500 },
      });
      client.on('error', () => {}); // the engine's user logs these; here they are expected
      await new Promise((resolve) => client.once('ready', resolve));
      const store = new RedisStore({ client, prefix: 'down:' });
      stores.push(store);
      await store.subscribed;
      expect(await store.set('k^a', '1')).toBe(true);
      for (const node of doomed.nodes) node.process.kill('SIGKILL');
      // No timing is asserted: a request that waited for the backend would hang past the timeout.
      for (const attempt of [
        () => store.get('k^a'),
        () => store.set('k^b', '1'),
        () => store.keys('k', undefined, 10),
        () => store.count(''),
      ]) {
        await expect(attempt()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      }
    } finally {
      await doomed.stop();
    }
  }, 30_000);
});
