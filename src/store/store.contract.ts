/**
 * The Store contract suite: every engine runs it (`describeStoreContract('memory', ...)`), so a
 * durable or remote engine behaves exactly like the in-memory one. Every result is awaited, so
 * synchronous and asynchronous engines are tested alike. Time is a fake clock the suite advances,
 * or, for an engine that keeps time itself (Redis), the real one (trait `clock: 'real'`): then the
 * suite's milliseconds are stretched (REAL_UNIT) and TTLs are checked to within REAL_PRECISION of
 * them, the best a real clock on a loaded machine allows; the fake clock checks them exactly.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChangeOp, JsonText, Store } from './store.js';

export type MakeStore = (opts: { now: () => number }) => Store | Promise<Store>;

/** What an engine cannot promise, declared rather than skipped (the suite checks the refusal). */
export interface EngineTraits {
  /**
   * Whether one MSET may span top-level namespaces atomically (default true). An engine that
   * shards by them (Redis Cluster) refuses such an MSET with CROSS_NAMESPACE and writes nothing.
   */
  readonly msetAcrossNamespaces?: boolean;
  /** `real`: the engine keeps time itself and ignores the suite's `now` (default `fake`). */
  readonly clock?: 'fake' | 'real';
}

/** With a real clock, one of the suite's milliseconds lasts this many real ones. */
const REAL_UNIT = 20;
/** With a real clock, TTLs are checked to within this many of the suite's milliseconds. */
const REAL_PRECISION = 10;
/** Real milliseconds added to each wait (see `pass`). */
const REAL_SLACK_MS = 5;

/** The top-level namespace of a key (its first segment). */
function topOf(key: string): string {
  const i = key.indexOf('^');
  return i === -1 ? key : key.slice(0, i);
}

/** Runs `fn` and returns what it threw or rejected with (fails when it did neither). */
async function failure(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
}

/** All names of a listing, page by page, checking each page's shape on the way. */
async function allPages(
  list: (after: string | undefined, limit: number) => unknown,
  limit: number,
): Promise<string[]> {
  const names: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = (await list(after, limit)) as { names: string[]; next: string | null };
    expect(page.names.length).toBeLessThanOrEqual(limit);
    names.push(...page.names);
    if (page.next === null) return names;
    expect(page.next).toBe(page.names[page.names.length - 1]);
    after = page.next;
  }
  throw new Error('paging did not end');
}

export function describeStoreContract(name: string, makeStore: MakeStore, traits: EngineTraits = {}): void {
  const msetAcross = traits.msetAcrossNamespaces ?? true;
  const real = traits.clock === 'real';
  /** A TTL of `n` of the suite's milliseconds, as the engine is given it. */
  const t = (n: number): number => (real ? n * REAL_UNIT : n);
  /** How close a TTL is checked (and how far before a deadline "not yet" is asserted). */
  const precision = real ? REAL_PRECISION : 1;
  /** A TTL answer of `n` of the suite's milliseconds: exact on the fake clock. */
  const expectTtl = (actual: number | null | undefined, n: number): void => {
    if (!real) {
      expect(actual).toBe(n);
      return;
    }
    expect(actual).toBeTypeOf('number');
    expect(actual as number).toBeLessThanOrEqual(t(n));
    expect(actual as number).toBeGreaterThan(t(n - precision));
  };
  describe(`Store contract: ${name}`, () => {
    let clock = 0;
    let store: Store;
    let events: [ChangeOp, string, JsonText | undefined][];
    /**
     * Lets `n` of the suite's milliseconds pass. On a real clock a little more: Redis keeps a key
     * through its expiry millisecond (it expires once the clock is past it), the fake clock does not.
     */
    const pass = async (n: number): Promise<void> => {
      if (real) await new Promise((resolve) => setTimeout(resolve, t(n) + REAL_SLACK_MS));
      else clock += n;
    };

    beforeEach(async () => {
      clock = 1_700_000_000_000;
      store = await makeStore({ now: () => clock });
      events = [];
    });

    afterEach(async () => {
      await store.close();
    });

    /** Fixture data: one MSET per top-level namespace, which every engine takes. */
    const seed = async (entries: [string, JsonText][]): Promise<void> => {
      const groups = new Map<string, [string, JsonText][]>();
      for (const entry of entries) {
        const top = topOf(entry[0]);
        groups.set(top, [...(groups.get(top) ?? []), entry]);
      }
      for (const group of groups.values()) await store.mset(group);
    };

    const listen = (): void => {
      store.onChange((op, key, value) => events.push([op, key, value]));
    };

    describe('get / set / del / exists', () => {
      it('returns what was set, as the same JSON text', async () => {
        expect(await store.set('a', '{"x":[1,2]}')).toBe(true);
        expect(await store.get('a')).toBe('{"x":[1,2]}');
        expect(await store.set('users^42^name', '"Ada"')).toBe(true);
        expect(await store.get('users^42^name')).toBe('"Ada"');
        expect(await store.set('n', 'null')).toBe(true);
        expect(await store.get('n')).toBe('null');
        expect(await store.exists('n')).toBe(true);
      });

      it('answers undefined / false for missing keys', async () => {
        expect(await store.get('missing')).toBeUndefined();
        expect(await store.get('no^such^namespace')).toBeUndefined();
        expect(await store.exists('missing')).toBe(false);
        expect(await store.del('missing')).toBe(false);
      });

      it('overwrites, and deletes', async () => {
        await store.set('k', '1');
        await store.set('k', '2');
        expect(await store.get('k')).toBe('2');
        expect(await store.del('k')).toBe(true);
        expect(await store.get('k')).toBeUndefined();
        expect(await store.del('k')).toBe(false);
      });

      it('keeps a key and a namespace of the same name apart', async () => {
        await store.set('a', '1');
        await store.set('a^b', '2');
        expect(await store.get('a')).toBe('1');
        expect(await store.get('a^b')).toBe('2');
        await store.del('a');
        expect(await store.get('a^b')).toBe('2');
      });

      it('handles names that are special to JavaScript objects', async () => {
        for (const key of ['__proto__', 'constructor', '__proto__^toString', 'hasOwnProperty^x']) {
          await store.set(key, '"v"');
          expect(await store.get(key)).toBe('"v"');
        }
        expect(await store.get('toString')).toBeUndefined();
      });
    });

    describe('conditional SET', () => {
      it('ifAbsent writes only a new key', async () => {
        expect(await store.set('k', '1', { ifAbsent: true })).toBe(true);
        expect(await store.set('k', '2', { ifAbsent: true })).toBe(false);
        expect(await store.get('k')).toBe('1');
      });

      it('ifPresent writes only an existing key', async () => {
        expect(await store.set('k', '1', { ifPresent: true })).toBe(false);
        expect(await store.exists('k')).toBe(false);
        await store.set('k', '1');
        expect(await store.set('k', '2', { ifPresent: true })).toBe(true);
        expect(await store.get('k')).toBe('2');
      });

      it('treats an expired key as absent', async () => {
        await store.set('k', '1', { ttl: t(10) });
        await pass(10);
        expect(await store.set('k', '2', { ifPresent: true })).toBe(false);
        expect(await store.set('k', '3', { ifAbsent: true })).toBe(true);
        expect(await store.get('k')).toBe('3');
        expect(await store.ttl('k')).toBeNull();
      });

      it('a refused conditional write changes nothing and tells no listener', async () => {
        await store.set('k', '1', { ttl: t(100) });
        listen();
        expect(await store.set('k', '2', { ifAbsent: true, ttl: t(5) })).toBe(false);
        expectTtl(await store.ttl('k'), 100);
        expect(events).toEqual([]);
      });
    });

    describe('TTL', () => {
      it('expires a key exactly when its time is up', async () => {
        await store.set('k', '1', { ttl: t(100) });
        expectTtl(await store.ttl('k'), 100);
        await pass(100 - precision);
        expect(await store.get('k')).toBe('1');
        expectTtl(await store.ttl('k'), precision);
        await pass(precision);
        expect(await store.get('k')).toBeUndefined();
        expect(await store.exists('k')).toBe(false);
        expect(await store.ttl('k')).toBeUndefined();
      });

      it('SET without ttl removes an earlier TTL; with ttl replaces it', async () => {
        await store.set('k', '1', { ttl: t(100) });
        await store.set('k', '2');
        expect(await store.ttl('k')).toBeNull();
        await store.set('k', '3', { ttl: t(50) });
        await store.set('k', '4', { ttl: t(500) });
        await pass(100);
        expect(await store.get('k')).toBe('4');
        expectTtl(await store.ttl('k'), 400);
      });

      it('EXPIRE sets a TTL on an existing key only', async () => {
        expect(await store.expire('missing', t(10))).toBe(false);
        expect(await store.exists('missing')).toBe(false);
        await store.set('k', '1');
        expect(await store.ttl('k')).toBeNull();
        expect(await store.expire('k', t(10))).toBe(true);
        expectTtl(await store.ttl('k'), 10);
        expect(await store.expire('k', t(30))).toBe(true);
        await pass(20);
        expect(await store.get('k')).toBe('1');
        await pass(10);
        expect(await store.get('k')).toBeUndefined();
      });

      it('PERSIST removes a TTL and says whether there was one', async () => {
        await store.set('k', '1', { ttl: t(10) });
        expect(await store.persist('k')).toBe(true);
        expect(await store.persist('k')).toBe(false);
        expect(await store.persist('missing')).toBe(false);
        await pass(100);
        expect(await store.get('k')).toBe('1');
      });

      it('an expired key cannot be revived by EXPIRE or PERSIST', async () => {
        await store.set('k', '1', { ttl: t(10) });
        await pass(10);
        expect(await store.expire('k', t(100))).toBe(false);
        expect(await store.persist('k')).toBe(false);
        expect(await store.get('k')).toBeUndefined();
      });

      it('listings and counts never include expired keys', async () => {
        await store.set('ns^a', '1', { ttl: t(10) });
        await store.set('ns^b', '1');
        await store.set('ns^sub^c', '1', { ttl: t(10) });
        await store.set('other^d', '1', { ttl: t(10) });
        expect(await store.count('ns')).toBe(3);
        await pass(10);
        expect(await store.count('ns')).toBe(1);
        expect(await store.count('')).toBe(1);
        expect((await store.keys('ns', undefined, 10)).names).toEqual(['b']);
        expect((await store.namespaces('ns', undefined, 10)).names).toEqual([]);
        expect((await store.namespaces('', undefined, 10)).names).toEqual(['ns']);
        expect(await store.drop('other')).toBe(0);
      });
    });

    describe('INCR', () => {
      it('starts a missing key at 0 and adds', async () => {
        expect(await store.incr('c', 1)).toBe(1);
        expect(await store.incr('c', 41)).toBe(42);
        expect(await store.incr('c', -50)).toBe(-8);
        expect(await store.get('c')).toBe('-8');
        expect(await store.incr('ns^d', 5)).toBe(5);
        expect(await store.count('ns')).toBe(1);
      });

      it('refuses a value that is not a number with WRONG_TYPE and leaves it', async () => {
        for (const value of ['"5"', '[1]', '{"n":1}', 'null', 'true']) {
          await store.set('k', value);
          expect(await failure(() => store.incr('k', 1))).toMatchObject({
            name: 'StoreError',
            code: 'WRONG_TYPE',
          });
          expect(await store.get('k')).toBe(value);
        }
      });

      it('refuses results beyond 2^53 - 1 with OVERFLOW and leaves the value', async () => {
        await store.set('k', String(Number.MAX_SAFE_INTEGER - 1));
        expect(await store.incr('k', 1)).toBe(Number.MAX_SAFE_INTEGER);
        expect(await failure(() => store.incr('k', 1))).toMatchObject({ code: 'OVERFLOW' });
        expect(await store.get('k')).toBe(String(Number.MAX_SAFE_INTEGER));
        await store.set('m', String(-Number.MAX_SAFE_INTEGER));
        expect(await failure(() => store.incr('m', -1))).toMatchObject({ code: 'OVERFLOW' });
        await store.set('big', '1e308');
        expect(await failure(() => store.incr('big', 1))).toMatchObject({ code: 'OVERFLOW' });
        expect(await failure(() => store.incr('fresh', Number.NaN))).toMatchObject({ code: 'OVERFLOW' });
        expect(await store.exists('fresh')).toBe(false);
      });

      it('keeps the TTL', async () => {
        await store.set('k', '1', { ttl: t(100) });
        await pass(40);
        expect(await store.incr('k', 1)).toBe(2);
        expectTtl(await store.ttl('k'), 60);
        await pass(60);
        expect(await store.exists('k')).toBe(false);
        expect(await store.incr('k', 1)).toBe(1);
        expect(await store.ttl('k')).toBeNull();
      });
    });

    describe('CAS', () => {
      it('writes when the current value deep-equals the expected one', async () => {
        await store.set('k', '{"a":1,"b":[1,{"c":null}]}');
        expect(await store.cas('k', '{"b":[1,{"c":null}],"a":1}', '"next"')).toBe(true);
        expect(await store.get('k')).toBe('"next"');
        expect(await store.cas('k', '"other"', '"x"')).toBe(false);
        expect(await store.get('k')).toBe('"next"');
      });

      it('compares structurally, not textually', async () => {
        await store.set('k', '[1, 2]');
        expect(await store.cas('k', '[2,1]', '0')).toBe(false);
        expect(await store.cas('k', '[1.0,2]', '0')).toBe(true);
        await store.set('o', '{"a":1}');
        expect(await store.cas('o', '{"a":1,"b":2}', '0')).toBe(false);
        expect(await store.cas('o', '{"a":"1"}', '0')).toBe(false);
        expect(await store.cas('o', 'null', '0')).toBe(false);
      });

      it('never matches a missing or expired key, and drops the TTL when it writes', async () => {
        expect(await store.cas('missing', 'null', '1')).toBe(false);
        expect(await store.exists('missing')).toBe(false);
        await store.set('k', '1', { ttl: t(10) });
        expect(await store.cas('k', '1', '2')).toBe(true);
        expect(await store.ttl('k')).toBeNull();
        await store.set('e', '1', { ttl: t(10) });
        await pass(10);
        expect(await store.cas('e', '1', '2')).toBe(false);
      });
    });

    describe('MGET / MSET', () => {
      it('reads many keys in order, undefined for missing ones', async () => {
        await store.mset([
          ['ns^a', '1'],
          ['ns^b^c', '2'],
          ['ns^a', '3'],
        ]);
        await store.set('other', '4');
        expect(await store.mget(['ns^a', 'missing', 'ns^b^c', 'other', 'ns^a'])).toEqual([
          '3',
          undefined,
          '2',
          '4',
          '3',
        ]);
        expect(await store.mget([])).toEqual([]);
      });

      it('MSET writes without TTL and tells the listener of every entry', async () => {
        await store.set('n^a', '0', { ttl: t(10) });
        listen();
        await store.mset([
          ['n^a', '1'],
          ['n^b', '2'],
        ]);
        expect(await store.ttl('n^a')).toBeNull();
        expect(events).toEqual([
          ['set', 'n^a', '1'],
          ['set', 'n^b', '2'],
        ]);
      });

      it(
        msetAcross
          ? 'MSET across top-level namespaces writes them all'
          : 'MSET across top-level namespaces is refused with CROSS_NAMESPACE and writes nothing',
        async () => {
          listen();
          const write = store.mset([
            ['a', '1'],
            ['ns^b', '2'],
          ]);
          if (msetAcross) {
            await write;
            expect(await store.mget(['a', 'ns^b'])).toEqual(['1', '2']);
          } else {
            expect(await failure(() => write)).toMatchObject({ code: 'CROSS_NAMESPACE' });
            expect(await store.mget(['a', 'ns^b'])).toEqual([undefined, undefined]);
            expect(events).toEqual([]);
          }
        },
      );
    });

    describe('KEYS / NAMESPACES / COUNT', () => {
      beforeEach(async () => {
        await seed([
          ['root1', '1'],
          ['users^2', '1'],
          ['users^10', '1'],
          ['users^1', '1'],
          ['users^1^name', '1'],
          ['users^1^mail', '1'],
          ['users^B', '1'],
          ['users^a', '1'],
          ['users^é', '1'],
          ['users^😀', '1'],
          ['users^\uffff', '1'],
          ['users^10^x^y', '1'],
          ['items^1', '1'],
        ]);
      });

      it('lists the names directly in a namespace, in code-unit order', async () => {
        const page = await store.keys('users', undefined, 100);
        // UTF-16 code-unit order: the surrogate pair of 😀 (0xD83D...) sorts before U+FFFF.
        expect(page).toEqual({ names: ['1', '10', '2', 'B', 'a', 'é', '😀', '\uffff'], next: null });
        expect((await store.keys('', undefined, 100)).names).toEqual(['root1']);
        expect((await store.keys('users^1', undefined, 100)).names).toEqual(['mail', 'name']);
        expect(await store.keys('nope', undefined, 10)).toEqual({ names: [], next: null });
        expect(await store.keys('users^10^x^y', undefined, 10)).toEqual({ names: [], next: null });
      });

      it('pages by cursor; next is null exactly on the last page', async () => {
        expect(await store.keys('users', undefined, 3)).toEqual({ names: ['1', '10', '2'], next: '2' });
        expect(await store.keys('users', '2', 3)).toEqual({ names: ['B', 'a', 'é'], next: 'é' });
        expect(await store.keys('users', 'é', 2)).toEqual({ names: ['😀', '\uffff'], next: null });
        expect(await store.keys('users', '\uffff', 2)).toEqual({ names: [], next: null });
        // A cursor need not be a present name.
        expect(await store.keys('users', '11', 2)).toEqual({ names: ['2', 'B'], next: 'B' });
        expect(await store.keys('users', '', 1)).toEqual({ names: ['1'], next: '1' });
        for (const limit of [1, 2, 7, 8, 9]) {
          expect(await allPages((after, n) => store.keys('users', after, n), limit)).toHaveLength(8);
        }
      });

      it('lists child namespaces the same way', async () => {
        expect(await store.namespaces('', undefined, 10)).toEqual({ names: ['items', 'users'], next: null });
        expect(await store.namespaces('', undefined, 1)).toEqual({ names: ['items'], next: 'items' });
        expect(await store.namespaces('', 'items', 1)).toEqual({ names: ['users'], next: null });
        expect((await store.namespaces('users', undefined, 10)).names).toEqual(['1', '10']);
        expect((await store.namespaces('users^10', undefined, 10)).names).toEqual(['x']);
        expect(await store.namespaces('nope', undefined, 10)).toEqual({ names: [], next: null });
      });

      it('counts keys in the whole subtree', async () => {
        expect(await store.count('')).toBe(13);
        expect(await store.count('users')).toBe(11);
        expect(await store.count('users^1')).toBe(2);
        expect(await store.count('users^10^x')).toBe(1);
        expect(await store.count('nope')).toBe(0);
        await store.del('users^1^name');
        expect(await store.count('users')).toBe(10);
        expect(await store.count('')).toBe(12);
      });

      it('a namespace disappears with its last key', async () => {
        await store.del('users^10^x^y');
        expect((await store.namespaces('users', undefined, 10)).names).toEqual(['1']);
        expect(await store.count('users^10')).toBe(0);
        expect(await store.exists('users^10')).toBe(true);
        await store.del('items^1');
        expect((await store.namespaces('', undefined, 10)).names).toEqual(['users']);
      });
    });

    describe('DROP', () => {
      beforeEach(async () => {
        await seed([
          ['a^1', '1'],
          ['a^2', '1'],
          ['a^b^3', '1'],
          ['a^b^c^4', '1'],
          ['ab^5', '1'],
          ['a', '1'],
        ]);
        await store.set('a^b^ttl', '1', { ttl: t(100) });
      });

      it('removes the subtree and answers how many keys went', async () => {
        expect(await store.drop('a^b')).toBe(3);
        expect(await store.get('a^b^3')).toBeUndefined();
        expect(await store.get('a^b^c^4')).toBeUndefined();
        expect(await store.ttl('a^b^ttl')).toBeUndefined();
        expect(await store.count('a')).toBe(2);
        expect(await store.count('')).toBe(4);
        expect((await store.namespaces('a', undefined, 10)).names).toEqual([]);
        expect(await store.drop('a^b')).toBe(0);
      });

      it('does not touch keys that merely share a prefix, nor the key named like the namespace', async () => {
        expect(await store.drop('a')).toBe(5);
        expect(await store.get('ab^5')).toBe('1');
        expect(await store.get('a')).toBe('1');
        expect((await store.namespaces('', undefined, 10)).names).toEqual(['ab']);
      });

      it('lets the namespace be used again at once', async () => {
        await store.drop('a');
        expect(await store.set('a^b^ttl', '2', { ttl: t(20) })).toBe(true);
        expect(await store.get('a^b^ttl')).toBe('2');
        expectTtl(await store.ttl('a^b^ttl'), 20);
        expect(await store.count('a')).toBe(1);
        await pass(20);
        expect(await store.count('a')).toBe(0);
      });

      it('does not count keys that had already expired', async () => {
        await pass(100);
        expect(await store.drop('a^b')).toBe(2);
      });

      it('answers 0 for a namespace that does not exist', async () => {
        expect(await store.drop('nope')).toBe(0);
        expect(await store.drop('a^1')).toBe(0);
        expect(await store.count('')).toBe(7);
      });
    });

    describe('change listener', () => {
      it('hears every mutation with the new value', async () => {
        listen();
        await store.set('k', '1');
        await store.incr('k', 2);
        await store.cas('k', '3', '"c"');
        await store.del('k');
        await store.set('ns^x', '1');
        await store.drop('ns');
        expect(events).toEqual([
          ['set', 'k', '1'],
          ['incr', 'k', '3'],
          ['cas', 'k', '"c"'],
          ['del', 'k', undefined],
          ['set', 'ns^x', '1'],
          ['drop', 'ns', undefined],
        ]);
      });

      it('hears expiry once, when a read finds the key expired', async () => {
        await store.set('k', '1', { ttl: t(10) });
        listen();
        await pass(10);
        expect(await store.get('k')).toBeUndefined();
        expect(await store.get('k')).toBeUndefined();
        expect(events).toEqual([['expire', 'k', undefined]]);
      });

      it('hears nothing for operations that change nothing', async () => {
        listen();
        await store.del('missing');
        await store.cas('missing', '1', '2');
        await store.drop('missing');
        await store.set('k', '1', { ifPresent: true });
        expect(events).toEqual([]);
      });

      it('can be removed', async () => {
        listen();
        store.onChange(null);
        await store.set('k', '1');
        expect(events).toEqual([]);
      });
    });

    describe('stats', () => {
      it('counts keys, namespaces and TTLs', async () => {
        await store.set('a', '1');
        await store.set('n^m^b', '1', { ttl: t(10) });
        expect(await store.stats()).toMatchObject({ keys: 2, namespaces: 2, keysWithTtl: 1 });
        await pass(10);
        expect(await store.get('n^m^b')).toBeUndefined();
        expect(await store.stats()).toMatchObject({ keys: 1, namespaces: 0, keysWithTtl: 0, expired: 1 });
      });
    });
  });
}
