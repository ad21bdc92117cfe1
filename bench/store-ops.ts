/**
 * MemoryStore operation throughput (no network, no codec): what the engine costs per request.
 *
 *   npx tsx bench/store-ops.ts
 *
 * 100k keys in 1,000 namespaces (`ns0042^key00017`), 32-character string values, keys visited in a
 * shuffled order (as independent clients would). Each row is the median of 5 runs of 1M operations.
 * A bare `Map` doing the same get/set is printed as the ceiling the tree is measured against.
 */
import { performance } from 'node:perf_hooks';
import { joinKey, parseKey } from '../src/store/keypath.js';
import { MemoryStore } from '../src/store/memory.js';

const KEYS = 100_000;
const OPS = 1_000_000;
const RUNS = 5;

function flat(s: string): string {
  // JSON.parse yields a flat string, as keys from the codec are (template literals give cons strings).
  return JSON.parse(JSON.stringify(s)) as string;
}

const keys = Array.from({ length: KEYS }, (_, i) =>
  flat(`ns${String(i % 1000).padStart(4, '0')}^key${String(Math.floor(i / 1000)).padStart(5, '0')}`),
);
const rootKeys = keys.map((k) => flat(k.replace('^', '_')));
const missingKeys = keys.map((k) => flat(k.replace('^', '^x^')));
// Fisher-Yates with a fixed LCG so every run visits keys in the same shuffled order.
let seed = 42;
const order = Array.from({ length: OPS }, (_, i) => i % KEYS);
for (let i = order.length - 1; i > 0; i--) {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  const j = seed % (i + 1);
  [order[i], order[j]] = [order[j]!, order[i]!];
}
const value = JSON.stringify('v'.repeat(32));

function measure(name: string, setup: () => void, op: (i: number) => void): void {
  const rates: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    setup();
    const started = performance.now();
    for (let i = 0; i < OPS; i++) op(order[i]!);
    rates.push(OPS / ((performance.now() - started) / 1000));
  }
  rates.sort((a, b) => a - b);
  const median = rates[Math.floor(RUNS / 2)]!;
  console.log(`${name.padEnd(44)} ${(median / 1e6).toFixed(2).padStart(6)} M ops/s`);
}

let sink: unknown;
const caretKeys = keys.map((k) => flat(`^${k}`));
const names = keys.map((k) => flat(k.slice(k.indexOf('^') + 1)));
const namespacesOf = keys.map((k) => flat(k.slice(0, k.indexOf('^'))));
let store = new MemoryStore();
const fill = (): void => {
  store.close();
  store = new MemoryStore();
  for (const k of keys) store.set(k, value);
};
let map = new Map<string, string>();
const none = (): void => {};

console.log(`node ${process.version}; ${KEYS} keys, ${OPS} ops per run, median of ${RUNS}`);
measure(
  'Map.get (ceiling)',
  () => {
    map = new Map(keys.map((k) => [k, value]));
  },
  (i) => {
    sink = map.get(keys[i]!);
  },
);
measure('Map.set overwrite (ceiling)', none, (i) => {
  map.set(keys[i]!, value);
});
measure('keypath: parseKey canonical (no copy)', none, (i) => {
  sink = parseKey(keys[i]!);
});
measure('keypath: parseKey with leading ^', none, (i) => {
  sink = parseKey(caretKeys[i]!);
});
measure('keypath: joinKey(namespace, key)', none, (i) => {
  sink = joinKey(namespacesOf[i]!, names[i]!);
});
measure('GET ns^key', fill, (i) => {
  sink = store.get(keys[i]!);
});
measure(
  'GET root key',
  () => {
    store.close();
    store = new MemoryStore();
    for (const k of rootKeys) store.set(k, value);
  },
  (i) => {
    sink = store.get(rootKeys[i]!);
  },
);
measure('GET missing namespace', fill, (i) => {
  sink = store.get(missingKeys[i]!);
});
measure('SET overwrite', fill, (i) => {
  store.set(keys[i]!, value);
});
measure(
  'SET new keys (insert into sorted index)',
  () => {
    store.close();
    store = new MemoryStore();
  },
  (i) => {
    store.set(keys[i]!, value);
  },
);
measure('SET overwrite with ttl', fill, (i) => {
  store.set(keys[i]!, value, { ttl: 60_000 + i });
});
measure(
  'GET of keys that all have a TTL',
  () => {},
  (i) => {
    sink = store.get(keys[i]!);
  },
);
measure(
  'INCR',
  () => {
    store.close();
    store = new MemoryStore();
  },
  (i) => {
    sink = store.incr(keys[i]!, 1);
  },
);
measure(
  'SET overwrite with a change listener',
  () => {
    fill();
    store.onChange(() => {});
  },
  (i) => {
    store.set(keys[i]!, value);
  },
);
store.close();
if (sink === Symbol.for('never')) console.log(sink);
