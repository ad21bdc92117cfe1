import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, type MemoryStoreOptions } from './memory.js';
import { describeStoreContract } from './store.contract.js';
import type { ChangeOp, Store } from './store.js';

describeStoreContract('MemoryStore', ({ now }) => new MemoryStore({ now }));

/** The same engine answering every request a turn later, as a durable or remote engine would. */
function deferred(store: Store): Store {
  const synchronous = new Set<PropertyKey>(['onChange']);
  return new Proxy(store, {
    get(target, property, receiver) {
      const member: unknown = Reflect.get(target, property, receiver);
      if (typeof member !== 'function' || synchronous.has(property)) return member;
      return (...args: unknown[]) =>
        new Promise((resolve) => setImmediate(resolve)).then(() => member.apply(target, args));
    },
  });
}

describeStoreContract('MemoryStore behind promises (the suite must hold for async engines)', ({ now }) =>
  deferred(new MemoryStore({ now })),
);

describe('MemoryStore engine', () => {
  let clock = 0;
  const stores: MemoryStore[] = [];
  const make = (options: MemoryStoreOptions = {}): MemoryStore => {
    clock = 1_000_000;
    const store = new MemoryStore({ now: () => clock, ...options });
    stores.push(store);
    return store;
  };

  afterEach(() => {
    for (const store of stores.splice(0)) store.close();
  });

  it('answers synchronously (no promise per request)', () => {
    const store = make();
    expect(store.set('a^b', '1')).toBe(true);
    expect(store.get('a^b')).toBe('1');
    expect(store.count('a')).toBe(1);
    expect(store.keys('a', undefined, 10)).toEqual({ names: ['b'], next: null });
  });

  it('the active sweep reclaims expired keys nobody touches', async () => {
    const store = make({ sweepIntervalMs: 1 });
    const expired: string[] = [];
    store.onChange((op, key) => {
      if (op === 'expire') expired.push(key);
    });
    store.set('ns^a', '1', { ttl: 10 });
    store.set('ns^b', '1', { ttl: 20 });
    store.set('keep', '1');
    clock += 10;
    await vi.waitFor(() => expect(expired).toEqual(['ns^a']), { timeout: 5000, interval: 2 });
    // stats() never expires anything itself, so these figures come from the sweep alone.
    expect(store.stats()).toMatchObject({ keys: 2, keysWithTtl: 1, expired: 1, namespaces: 1 });
    clock += 10;
    await vi.waitFor(() => expect(expired).toEqual(['ns^a', 'ns^b']), { timeout: 5000, interval: 2 });
    expect(store.stats()).toMatchObject({ keys: 1, keysWithTtl: 0, expired: 2, namespaces: 0 });
    expect(store.engineStats().expiringNamespaces).toBe(0);
  });

  it('drains a large expiry backlog in chunks before answering a listing, exactly', async () => {
    const store = make({ sweepBudgetMs: 0 });
    for (let i = 0; i < 5000; i++) store.set(`ns^k${i}`, '1', { ttl: 10 + (i % 2) * 1000 });
    clock += 10;
    const pending = store.count('ns');
    expect(pending).toBeInstanceOf(Promise);
    expect(await pending).toBe(2500);
    expect(store.stats()).toMatchObject({ keys: 2500, expired: 2500 });
  });

  it('keeps call order while a deferred answer is pending: later calls wait behind it', async () => {
    const store = make({ sweepBudgetMs: 0 });
    for (let i = 0; i < 5000; i++) store.set(`d^k${i}`, '1', { ttl: 10 });
    clock += 10;
    // Called in this order, so they must take effect in this order, however they answer.
    const dropped = store.drop('d');
    const written = store.set('d^after', '"kept"');
    const counted = store.count('d');
    const read = store.get('d^after');
    expect(dropped).toBeInstanceOf(Promise);
    expect(await Promise.all([dropped, written, counted, read])).toEqual([0, true, 1, '"kept"']);
    // Once the queue empties, calls answer synchronously again.
    expect(store.get('d^after')).toBe('"kept"');
  });

  it('DROP answers at once and takes the dropped namespaces out of the expiry queue in the background', async () => {
    const store = make({ sweepBudgetMs: 0 });
    for (let i = 0; i < 5000; i++) store.set(`big^sub${i % 7}^k${i}`, '1', { ttl: 1000 + i });
    store.set('keep', '1', { ttl: 5000 });
    const events: [ChangeOp, string][] = [];
    store.onChange((op, key) => events.push([op, key]));
    expect(store.drop('big')).toBe(5000);
    expect(store.stats()).toMatchObject({ keys: 1, keysWithTtl: 1, namespaces: 0 });
    expect(store.engineStats().dropCleanupPending).toBe(true);
    await vi.waitFor(
      () =>
        expect(store.engineStats()).toEqual({
          expiringNamespaces: 1,
          dropCleanupPending: false,
          indexedNamespaces: 0,
          keyIndexesPending: false,
        }),
      {
        timeout: 5000,
        interval: 2,
      },
    );
    expect(events).toEqual([['drop', 'big']]);
  });

  it('a namespace dropped and created afresh is the new one, before and after the drop cleanup', async () => {
    const store = make({ sweepBudgetMs: 0 });
    // No TTLs: the cleanup still walks the subtree, for the namespace index.
    for (let i = 0; i < 3000; i++) store.set(`app^n${i % 300}^deep^k${i}`, `${i}`);
    store.set('app^n7^deep^x', '"old"');
    store.set('other^k', '1');
    expect(store.engineStats().indexedNamespaces).toBe(1 + 300 * 2 + 1);
    expect(store.drop('app')).toBe(3001);
    expect(store.engineStats().dropCleanupPending).toBe(true);
    // Before the cleanup ran: nothing of the dropped subtree is found, at any depth.
    expect(store.get('app^n7^deep^x')).toBeUndefined();
    expect(store.exists('app^n299^deep^k2999')).toBe(false);
    expect(store.count('app^n7')).toBe(0);
    expect(store.keys('app^n7^deep', undefined, 10)).toEqual({ names: [], next: null });
    // Created afresh at the same paths, while the old entries are still waiting for the cleanup.
    store.set('app^n7^deep^x', '"new"');
    expect(store.get('app^n7^deep^x')).toBe('"new"');
    expect(store.get('app^n7^deep^k7')).toBeUndefined();
    expect(store.count('app')).toBe(1);
    await vi.waitFor(() => expect(store.engineStats().dropCleanupPending).toBe(false), {
      timeout: 5000,
      interval: 2,
    });
    // The stale entries are gone, the new namespaces stay: app, app^n7, app^n7^deep and other.
    expect(store.engineStats().indexedNamespaces).toBe(4);
    expect(store.get('app^n7^deep^x')).toBe('"new"');
    expect(store.keys('app^n7^deep', undefined, 10)).toEqual({ names: ['x'], next: null });
    expect(store.stats()).toMatchObject({ keys: 2, namespaces: 4 });
  });

  it('after a replay, key indexes are built in the background or by the first listing, exactly', async () => {
    const store = make();
    store.restoreBegin();
    // Interleaved arrival order across namespaces, with overwrites and deletes, as a log holds them.
    for (let i = 59; i >= 0; i--)
      store.restoreSet(`ns${i % 3}^k${String(i).padStart(2, '0')}`, String(i), undefined);
    store.restoreSet('ns0^k03', '"again"', undefined);
    store.restoreDel('ns1^k04');
    store.restoreSet('ns1^k04', '4', undefined);
    store.restoreDel('ns2^k05');
    store.restoreDone();
    expect(store.engineStats().keyIndexesPending).toBe(true);
    // Before any index is built: a write, a delete, then listings (which build what they need).
    store.set('ns0^a-first', '1');
    store.del('ns0^k06');
    const names = (ns: string): string[] => {
      const out: string[] = [];
      for (let after: string | undefined, more = true; more; ) {
        const page = store.keys(ns, after, 4) as { names: string[]; next: string | null };
        out.push(...page.names);
        after = page.next ?? undefined;
        more = page.next !== null;
      }
      return out;
    };
    const expected = (r: number, extra: string[], gone: string[]): string[] =>
      [
        ...extra,
        ...Array.from({ length: 60 }, (_, i) => i)
          .filter((i) => i % 3 === r)
          .map((i) => `k${String(i).padStart(2, '0')}`),
      ]
        .filter((name) => !gone.includes(name))
        .sort();
    expect(names('ns0')).toEqual(expected(0, ['a-first'], ['k06']));
    expect(names('ns1')).toEqual(expected(1, [], []));
    // The background builder finishes the rest within a few turns and stops.
    for (let turn = 0; turn < 10 && store.engineStats().keyIndexesPending; turn++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(store.engineStats().keyIndexesPending).toBe(false);
    store.set('ns2^k99', '1');
    store.set('ns2^a', '1');
    expect(names('ns2')).toEqual(expected(2, ['a', 'k99'], ['k05']));
  });

  it('a namespace emptied key by key leaves the index at once', () => {
    const store = make();
    store.set('a^b^c', '1');
    store.set('a^d', '1');
    expect(store.engineStats().indexedNamespaces).toBe(2);
    store.del('a^b^c');
    expect(store.engineStats().indexedNamespaces).toBe(1);
    store.del('a^d');
    expect(store.engineStats()).toMatchObject({ indexedNamespaces: 0, dropCleanupPending: false });
  });

  it('dropped keys that come due before their cleanup are discarded without expire events', async () => {
    const store = make({ sweepBudgetMs: 0 });
    for (let i = 0; i < 1000; i++) store.set(`big^k${i}`, '1', { ttl: 10 });
    store.set('other', '1', { ttl: 10 });
    const events: [ChangeOp, string][] = [];
    store.onChange((op, key) => events.push([op, key]));
    store.drop('big');
    clock += 10;
    expect(await store.count('')).toBe(0);
    expect(events).toEqual([
      ['drop', 'big'],
      ['expire', 'other'],
    ]);
    expect(store.engineStats().expiringNamespaces).toBe(0);
  });

  it('dropping the root empties the store (the wire layer refuses it; FLUSHALL may use it)', () => {
    const store = make();
    store.set('a', '1');
    store.set('b^c', '1', { ttl: 5 });
    expect(store.drop('')).toBe(2);
    expect(store.stats()).toMatchObject({ keys: 0, namespaces: 0, keysWithTtl: 0 });
    expect(store.get('a')).toBeUndefined();
    expect(store.get('b^c')).toBeUndefined();
    expect(store.engineStats().indexedNamespaces).toBe(0);
    store.set('a', '2');
    expect(store.get('a')).toBe('2');
  });

  it('a listener that throws does not undo or fail the write, and is logged', () => {
    const warn = vi.fn();
    const store = make({ logger: { warn, debug: vi.fn() } });
    store.onChange(() => {
      throw new Error('listener bug');
    });
    expect(store.set('k', '1')).toBe(true);
    expect(store.get('k')).toBe('1');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]?.[1]).toBe('store change listener threw');
  });

  it('refuses programming errors (bad ttl or limit) before changing anything', () => {
    const store = make();
    for (const ttl of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => store.set('k', '1', { ttl })).toThrow(RangeError);
      expect(() => store.expire('k', ttl)).toThrow(RangeError);
    }
    expect(store.exists('k')).toBe(false);
    for (const limit of [0, 1.5, -1]) expect(() => store.keys('', undefined, limit)).toThrow(RangeError);
  });
});
