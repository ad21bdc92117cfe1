/**
 * Model-based test: random sequences of every Store action, run against MemoryStore and against a
 * deliberately naive model (one flat Map, everything computed by scanning), must agree after every
 * step — results, and the whole visible state. Shrunk counterexamples found on the way are kept
 * below as named regression tests.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from './memory.js';
import type { JsonText, Store } from './store.js';

// A small key space so actions collide: `a` is both a key and a namespace, `a^b` nests below it.
const NAMESPACES = ['', 'a', 'b', 'a^b', 'a^b^c'];
const NAMES = ['a', 'b', 'x', 'y'];
const KEYS = NAMESPACES.flatMap((ns) => NAMES.map((name) => (ns === '' ? name : `${ns}^${name}`)));
const VALUES = [
  '0',
  '1',
  '-3',
  '"s"',
  'null',
  '[1,2]',
  '{"a":1,"b":2}',
  '{"b":2,"a":1}',
  '9007199254740990',
  '1.5',
];

type Action =
  | { op: 'set'; key: string; value: JsonText; ttl?: number; ifAbsent?: boolean; ifPresent?: boolean }
  | { op: 'get' | 'del' | 'exists' | 'ttl' | 'persist'; key: string }
  | { op: 'incr'; key: string; by: number }
  | { op: 'cas'; key: string; expected: JsonText; value: JsonText }
  | { op: 'mget'; keys: string[] }
  | { op: 'mset'; entries: [string, JsonText][] }
  | { op: 'keys' | 'namespaces'; namespace: string; limit: number }
  | { op: 'count' | 'drop'; namespace: string }
  | { op: 'expire'; key: string; ttl: number }
  | { op: 'advance'; ms: number };

const key = fc.constantFrom(...KEYS);
const value = fc.constantFrom(...VALUES);
const namespace = fc.constantFrom(...NAMESPACES);
const ttl = fc.constantFrom(1, 5, 10, 30);

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    arbitrary: fc.record(
      {
        op: fc.constant('set' as const),
        key,
        value,
        ttl,
        ifAbsent: fc.boolean(),
        ifPresent: fc.boolean(),
      },
      { requiredKeys: ['op', 'key', 'value'] },
    ),
    weight: 6,
  },
  fc.record({
    op: fc.constantFrom(
      'get' as const,
      'del' as const,
      'exists' as const,
      'ttl' as const,
      'persist' as const,
    ),
    key,
  }),
  fc.record({ op: fc.constant('incr' as const), key, by: fc.constantFrom(1, -2, 5, 2 ** 52) }),
  fc.record({ op: fc.constant('cas' as const), key, expected: value, value }),
  fc.record({ op: fc.constant('mget' as const), keys: fc.array(key, { maxLength: 4 }) }),
  fc.record({ op: fc.constant('mset' as const), entries: fc.array(fc.tuple(key, value), { maxLength: 4 }) }),
  fc.record({
    op: fc.constantFrom('keys' as const, 'namespaces' as const),
    namespace,
    limit: fc.integer({ min: 1, max: 5 }),
  }),
  fc.record({ op: fc.constantFrom('count' as const, 'drop' as const), namespace }),
  fc.record({ op: fc.constant('expire' as const), key, ttl }),
  {
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.constantFrom(1, 4, 10, 25) }),
    weight: 3,
  },
);

/** The reference: a flat map, with every question answered by a full scan. */
class Model {
  readonly entries = new Map<string, { value: JsonText; expiresAt: number | null }>();
  now = 0;

  private alive(key: string) {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== null && entry.expiresAt <= this.now) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private liveKeys(): string[] {
    return [...this.entries.keys()].filter((k) => this.alive(k) !== undefined);
  }

  private static under(namespace: string, key: string): boolean {
    return namespace === '' || key.startsWith(`${namespace}^`);
  }

  private static sorted(names: Iterable<string>): string[] {
    return [...new Set(names)].sort();
  }

  run(a: Action): unknown {
    switch (a.op) {
      case 'set': {
        const present = this.alive(a.key) !== undefined;
        if ((a.ifAbsent && present) || (a.ifPresent && !present)) return false;
        this.entries.set(a.key, { value: a.value, expiresAt: a.ttl === undefined ? null : this.now + a.ttl });
        return true;
      }
      case 'get':
        return this.alive(a.key)?.value;
      case 'exists':
        return this.alive(a.key) !== undefined;
      case 'del':
        return this.alive(a.key) !== undefined && this.entries.delete(a.key);
      case 'ttl': {
        const entry = this.alive(a.key);
        return entry === undefined ? undefined : entry.expiresAt === null ? null : entry.expiresAt - this.now;
      }
      case 'persist': {
        const entry = this.alive(a.key);
        if (entry === undefined || entry.expiresAt === null) return false;
        entry.expiresAt = null;
        return true;
      }
      case 'expire': {
        const entry = this.alive(a.key);
        if (entry === undefined) return false;
        entry.expiresAt = this.now + a.ttl;
        return true;
      }
      case 'incr': {
        const entry = this.alive(a.key);
        const current: unknown = entry === undefined ? 0 : JSON.parse(entry.value);
        if (typeof current !== 'number') return { error: 'WRONG_TYPE' };
        const result = current + a.by;
        if (!Number.isSafeInteger(Math.trunc(result)) || !Number.isFinite(result))
          return { error: 'OVERFLOW' };
        if (entry === undefined) this.entries.set(a.key, { value: String(result), expiresAt: null });
        else entry.value = String(result);
        return result;
      }
      case 'cas': {
        const entry = this.alive(a.key);
        if (entry === undefined || canonical(entry.value) !== canonical(a.expected)) return false;
        this.entries.set(a.key, { value: a.value, expiresAt: null });
        return true;
      }
      case 'mget':
        return a.keys.map((k) => this.alive(k)?.value);
      case 'mset':
        for (const [k, v] of a.entries) this.entries.set(k, { value: v, expiresAt: null });
        return undefined;
      case 'keys':
        return this.sortedNames(a.namespace, (rest) => (rest.includes('^') ? undefined : rest));
      case 'namespaces':
        return this.sortedNames(a.namespace, (rest) =>
          rest.includes('^') ? rest.slice(0, rest.indexOf('^')) : undefined,
        );
      case 'count':
        return this.liveKeys().filter((k) => Model.under(a.namespace, k)).length;
      case 'drop': {
        const doomed = this.liveKeys().filter((k) => Model.under(a.namespace, k));
        for (const k of doomed) this.entries.delete(k);
        return doomed.length;
      }
      case 'advance':
        this.now += a.ms;
        return undefined;
    }
  }

  /** Names directly below `namespace`, picked from each key's remainder after the namespace prefix. */
  private sortedNames(namespace: string, pick: (rest: string) => string | undefined): string[] {
    const prefix = namespace === '' ? '' : `${namespace}^`;
    const names: string[] = [];
    for (const k of this.liveKeys()) {
      if (!k.startsWith(prefix)) continue;
      const name = pick(k.slice(prefix.length));
      if (name !== undefined) names.push(name);
    }
    return Model.sorted(names);
  }

  liveNamespaces(): number {
    const paths = new Set<string>();
    for (const k of this.liveKeys()) {
      for (let i = k.indexOf('^'); i !== -1; i = k.indexOf('^', i + 1)) paths.add(k.slice(0, i));
    }
    return paths.size;
  }

  liveWithTtl(): number {
    return this.liveKeys().filter((k) => this.entries.get(k)!.expiresAt !== null).length;
  }
}

/** Key-order-independent text of a JSON value: the model's own notion of deep equality. */
function canonical(text: JsonText): string {
  return JSON.stringify(JSON.parse(text), (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : 1)))
      : v,
  );
}

async function allNames(list: (after: string | undefined) => unknown): Promise<string[]> {
  const names: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = (await list(after)) as { names: string[]; next: string | null };
    names.push(...page.names);
    if (page.next === null) return names;
    after = page.next;
  }
}

async function runOnStore(store: Store, a: Action, advance: (ms: number) => void): Promise<unknown> {
  try {
    switch (a.op) {
      case 'set': {
        const options = { ttl: a.ttl, ifAbsent: a.ifAbsent, ifPresent: a.ifPresent };
        return await store.set(a.key, a.value, options);
      }
      case 'get':
        return await store.get(a.key);
      case 'exists':
        return await store.exists(a.key);
      case 'del':
        return await store.del(a.key);
      case 'ttl':
        return await store.ttl(a.key);
      case 'persist':
        return await store.persist(a.key);
      case 'expire':
        return await store.expire(a.key, a.ttl);
      case 'incr':
        return await store.incr(a.key, a.by);
      case 'cas':
        return await store.cas(a.key, a.expected, a.value);
      case 'mget':
        return await store.mget(a.keys);
      case 'mset':
        return await store.mset(a.entries);
      case 'keys':
        return await allNames((after) => store.keys(a.namespace, after, a.limit));
      case 'namespaces':
        return await allNames((after) => store.namespaces(a.namespace, after, a.limit));
      case 'count':
        return await store.count(a.namespace);
      case 'drop':
        return await store.drop(a.namespace);
      case 'advance':
        advance(a.ms);
        return undefined;
    }
  } catch (err) {
    return { error: (err as { code?: string }).code ?? String(err) };
  }
}

/** Runs the actions on both sides, comparing each result and then the whole visible state. */
async function check(actions: Action[]): Promise<void> {
  const model = new Model();
  const store = new MemoryStore({ now: () => model.now });
  try {
    for (const [step, a] of actions.entries()) {
      const expected = model.run(a);
      const actual = await runOnStore(store, a, () => {});
      expect(actual, `step ${step}: ${JSON.stringify(a)}`).toEqual(expected);
      // The whole state: every key, the counts, the listings, the engine's own totals.
      for (const k of KEYS)
        expect(await store.get(k), `step ${step}: get ${k}`).toBe(model.run({ op: 'get', key: k }));
      expect(await store.count(''), `step ${step}: count`).toBe(model.run({ op: 'count', namespace: '' }));
      expect(store.stats(), `step ${step}: stats`).toMatchObject({
        keys: model.run({ op: 'count', namespace: '' }),
        namespaces: model.liveNamespaces(),
        keysWithTtl: model.liveWithTtl(),
      });
    }
  } finally {
    store.close();
  }
}

describe('MemoryStore agrees with a flat reference model', () => {
  it('under random sequences of every action, with time passing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { maxLength: 60 }), (actions) => check(actions)),
      { numRuns: 300 },
    );
  });
});
