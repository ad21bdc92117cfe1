/**
 * Memory and event-loop health of MemoryStore at 1M keys (issue 5, target 4; issue 3, DROP/KEYS).
 *
 *   npx tsx bench/store-memory.ts            # the dataset without TTLs
 *   npx tsx bench/store-memory.ts --ttl      # every key with a TTL (bookkeeping included)
 *
 * Dataset: 1,000 namespaces x 1,000 keys (`ns0042^key00017`, 15-byte paths), 32-character string
 * values (JSON text `"..."`, 34 bytes). Keys and values are produced by JSON.parse of request-like
 * lines, so they are flat strings as the server would hold them (template literals would make cons
 * strings and skew the figures). Redis 7.0 holds the same data in ~159 MB RSS (issue 5).
 *
 * Then, with a steady trickle of other requests running (so the GC works as it would in a server):
 * KEYS paging through a 1M-key namespace, 1,000 names per page, one page per loop turn; DROP of
 * that namespace (keys with TTLs, the worst case for cleanup) and the 3 s after it. The event-loop
 * delay of each phase comes from perf_hooks.monitorEventLoopDelay.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MemoryStore } from '../src/store/memory.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const withTtl = process.argv.includes('--ttl');
const NAMESPACES = 1000;
const PER_NAMESPACE = 1000;
const TOTAL = NAMESPACES * PER_NAMESPACE;
const HOUR = 3_600_000;

const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MB`;

function settle(): NodeJS.MemoryUsage {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage();
}

function value(i: number): string {
  return `v${i.toString(36).padStart(31, '0')}`; // 32 characters
}

/** Parses one request-like line per key, as the codec would, and stores key and value text. */
function load(
  store: MemoryStore,
  keyOf: (i: number) => string,
  count: number,
  ttl: number | undefined,
): void {
  const options = ttl === undefined ? undefined : { ttl };
  for (let i = 0; i < count; i++) {
    const request = JSON.parse(`{"key":${JSON.stringify(keyOf(i))},"value":${JSON.stringify(value(i))}}`) as {
      key: string;
      value: string;
    };
    store.set(request.key, JSON.stringify(request.value), options);
  }
}

/** Runs `work` one step per loop turn (as requests would arrive) while measuring the loop delay. */
async function measureLoop(label: string, steps: () => Iterator<void>, extraMs = 0): Promise<void> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  // Other clients keep reading and writing meanwhile: this is what the GC and the loop must serve.
  let background = true;
  const side = new MemoryStore();
  const trickle = (): void => {
    for (let i = 0; i < 200; i++) side.set(`side^k${i}`, JSON.stringify(value(i)));
    for (let i = 0; i < 200; i++) side.get(`side^k${i}`);
    if (background) setTimeout(trickle, 1);
  };
  histogram.enable();
  trickle();
  const started = performance.now();
  const iterator = steps();
  await new Promise<void>((resolve) => {
    const step = (): void => {
      if (iterator.next().done === true) resolve();
      else setImmediate(step);
    };
    setImmediate(step);
  });
  const workMs = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, extraMs));
  background = false;
  histogram.disable();
  side.close();
  const ms = (ns: number): string => `${(ns / 1e6).toFixed(1)} ms`;
  console.log(
    `${label}: work ${workMs.toFixed(0)} ms; loop delay max ${ms(histogram.max)}, p99 ${ms(histogram.percentile(99))}, mean ${ms(histogram.mean)}`,
  );
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, ${withTtl ? 'every key with a TTL' : 'no TTLs'}`);
  const before = settle();
  const store = new MemoryStore();
  const started = performance.now();
  load(
    store,
    (i) =>
      `ns${String(Math.floor(i / PER_NAMESPACE)).padStart(4, '0')}^key${String(i % PER_NAMESPACE).padStart(5, '0')}`,
    TOTAL,
    withTtl ? HOUR : undefined,
  );
  const loadMs = performance.now() - started;
  const after = settle();
  const stats = store.stats();
  console.log(`loaded ${stats.keys} keys in ${stats.namespaces} namespaces in ${loadMs.toFixed(0)} ms`);
  console.log(`RSS ${mb(after.rss)} (process total; ${mb(before.rss)} before loading)`);
  console.log(`heap used ${mb(after.heapUsed)} (${mb(before.heapUsed)} before)`);
  console.log(
    `bytes/key: heap ${((after.heapUsed - before.heapUsed) / TOTAL).toFixed(0)}, RSS ${((after.rss - before.rss) / TOTAL).toFixed(0)}`,
  );
  console.log(`RSS vs Redis 7.0 (~159 MB for this data): ${(after.rss / (159 * 1048576)).toFixed(2)}x`);

  await measureLoop(
    'baseline: the request trickle alone, 1 s',
    function* () {
      yield;
    },
    1000,
  );

  // Empty the store (FLUSHALL-style drop of the root) and reuse the space for one 1M-key namespace.
  await measureLoop(
    'DROP of the root (1M keys, 1000 namespaces) + 3 s',
    function* () {
      const t = performance.now();
      const dropped = store.drop('');
      console.log(`  drop('') returned ${String(dropped)} in ${(performance.now() - t).toFixed(2)} ms`);
      yield;
    },
    3000,
  );

  load(store, (i) => `big^k${String(i).padStart(7, '0')}`, TOTAL, HOUR);
  settle();

  let seen = 0;
  let slowestPage = 0;
  await measureLoop('KEYS paging 3 times over a 1M-key namespace (1000 per page)', function* () {
    for (let round = 0; round < 3; round++) {
      let after: string | undefined;
      for (;;) {
        const t = performance.now();
        const page = store.keys('big', after, 1000) as { names: string[]; next: string | null };
        slowestPage = Math.max(slowestPage, performance.now() - t);
        seen += page.names.length;
        if (page.next === null) break;
        after = page.next;
        yield;
      }
    }
  });
  console.log(`  paged through ${seen} names; slowest KEYS call ${slowestPage.toFixed(2)} ms`);

  await measureLoop(
    'DROP of the 1M-key namespace (all with TTLs) + 3 s',
    function* () {
      const t = performance.now();
      const dropped = store.drop('big');
      console.log(`  drop('big') returned ${String(dropped)} in ${(performance.now() - t).toFixed(2)} ms`);
      yield;
    },
    3000,
  );
  console.log(`  expiry queue after cleanup: ${store.engineStats().expiringNamespaces} namespaces`);
  const end = settle();
  console.log(`RSS after the drops: ${mb(end.rss)}, heap used ${mb(end.heapUsed)}`);
  store.close();
}

await main();
