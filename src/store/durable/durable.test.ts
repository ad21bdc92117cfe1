import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { describeStoreContract } from '../store.contract.js';
import type { JsonText, Store } from '../store.js';
import { type DurableLogger, type DurableOptions, DurableStore } from './durable.js';
import { formatManifest } from './manifest.js';
import { FSYNC_POLICIES, type FsyncPolicy, type LogIo, NODE_IO } from './writer.js';

const quietLogger: DurableLogger = { debug() {}, info() {}, warn() {}, error() {} };

const root = mkdtempSync(join(tmpdir(), 'caretkv-durable-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = (): string => join(root, `d${dirs++}`);

for (const appendfsync of FSYNC_POLICIES) {
  describeStoreContract(
    `DurableStore (appendfsync ${appendfsync})`,
    ({ now }) =>
      new DurableStore({
        dir: freshDir(),
        appendfsync,
        rewritePercentage: 100,
        rewriteMinBytes: 64 << 20,
        logger: quietLogger,
        now,
      }),
  );
}

type Dump = Map<string, [JsonText, number | null]>;

/** Every key with its value and TTL, read through the Store API alone. */
async function dump(store: Store): Promise<Dump> {
  const out: Dump = new Map();
  const walk = async (ns: string): Promise<void> => {
    const prefix = ns === '' ? '' : `${ns}^`;
    for (let after: string | undefined, more = true; more; ) {
      const page = await store.keys(ns, after, 100);
      for (const name of page.names) {
        const key = prefix + name;
        out.set(key, [(await store.get(key))!, (await store.ttl(key)) as number | null]);
      }
      after = page.next ?? undefined;
      more = page.next !== null;
    }
    for (let after: string | undefined, more = true; more; ) {
      const page = await store.namespaces(ns, after, 100);
      for (const name of page.names) await walk(prefix + name);
      after = page.next ?? undefined;
      more = page.next !== null;
    }
  };
  await walk('');
  return out;
}

/** The dump as it should look `ms` later: TTLs shorter, keys due by then gone. */
function later(d: Dump, ms: number): Dump {
  const out: Dump = new Map();
  for (const [key, [value, ttl]] of d) {
    if (ttl === null) out.set(key, [value, null]);
    else if (ttl > ms) out.set(key, [value, ttl - ms]);
  }
  return out;
}

describe('DurableStore: restart', () => {
  let clock = 1_700_000_000_000;
  const open: DurableStore[] = [];
  const make = (dir: string, extra: Partial<DurableOptions> = {}): DurableStore => {
    const store = new DurableStore({
      dir,
      appendfsync: 'everysec',
      rewritePercentage: 0,
      rewriteMinBytes: 0,
      logger: quietLogger,
      now: () => clock,
      ...extra,
    });
    open.push(store);
    return store;
  };
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
  });

  const KEYS = ['a', 'b', 'n^a', 'n^b', 'n^m^x', 'n^m^y', 'o^p^q', 'é^😀', 'k\\"q'];
  const NAMESPACES = ['n', 'n^m', 'o', 'o^p'];
  const key = fc.constantFrom(...KEYS);
  const json = fc.oneof(
    fc.integer({ min: -50, max: 50 }),
    fc.string({ maxLength: 6 }),
    fc.constant(null),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const op = fc.oneof(
    fc.record({
      op: fc.constant('set' as const),
      key,
      value: json,
      ttl: fc.option(fc.integer({ min: 1, max: 5000 }), { nil: undefined }),
      cond: fc.constantFrom(undefined, 'ifAbsent', 'ifPresent'),
    }),
    fc.record({ op: fc.constant('del' as const), key }),
    fc.record({ op: fc.constant('incr' as const), key, by: fc.integer({ min: -5, max: 5 }) }),
    fc.record({ op: fc.constant('cas' as const), key, value: json, hit: fc.boolean() }),
    fc.record({
      op: fc.constant('mset' as const),
      entries: fc.array(fc.tuple(key, json), { minLength: 1, maxLength: 4 }),
    }),
    fc.record({ op: fc.constant('drop' as const), ns: fc.constantFrom(...NAMESPACES) }),
    fc.record({ op: fc.constant('expire' as const), key, ttl: fc.integer({ min: 1, max: 5000 }) }),
    fc.record({ op: fc.constant('persist' as const), key }),
    fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 3000 }) }),
    fc.record({ op: fc.constant('rewrite' as const) }),
  );
  type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

  async function apply(store: DurableStore, o: Op): Promise<void> {
    switch (o.op) {
      case 'set': {
        const options = { ttl: o.ttl, ...(o.cond === undefined ? {} : { [o.cond]: true }) };
        await store.set(o.key, JSON.stringify(o.value), options);
        return;
      }
      case 'del':
        await store.del(o.key);
        return;
      case 'incr':
        try {
          await store.incr(o.key, o.by);
        } catch (err) {
          expect(['WRONG_TYPE', 'OVERFLOW']).toContain((err as { code: string }).code);
        }
        return;
      case 'cas': {
        const current = await store.get(o.key);
        await store.cas(o.key, o.hit && current !== undefined ? current : '"nope"', JSON.stringify(o.value));
        return;
      }
      case 'mset':
        await store.mset(o.entries.map(([k, v]) => [k, JSON.stringify(v)] as const));
        return;
      case 'drop':
        await store.drop(o.ns);
        return;
      case 'expire':
        await store.expire(o.key, o.ttl);
        return;
      case 'persist':
        await store.persist(o.key);
        return;
      case 'tick':
        clock += o.ms;
        return;
      case 'rewrite':
        await store.rewrite();
        return;
    }
  }

  for (const appendfsync of FSYNC_POLICIES) {
    it(`replays exactly what was written, TTLs less the downtime (model check, ${appendfsync})`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(op, { maxLength: 40 }),
          fc.integer({ min: 0, max: 4000 }),
          async (ops, downtime) => {
            const dir = freshDir();
            const store = make(dir, { appendfsync });
            for (const o of ops) await apply(store, o);
            const before = await dump(store);
            await store.close();
            clock += downtime;
            const again = make(dir, { appendfsync });
            expect(await dump(again)).toEqual(later(before, downtime));
            await again.close();
          },
        ),
        { numRuns: 100 },
      );
    });
  }

  it('restarts after a downtime that expired most keys, some in a namespace dropped later', async () => {
    const dir = freshDir();
    const store = make(dir);
    for (let i = 0; i < 2000; i++)
      store.set(`ns${i % 7}^k${i}`, String(i), { ttl: i < 1500 ? 1000 : 60_000 });
    store.set('gone^deep^k', '1', { ttl: 1 });
    store.drop('gone');
    store.set('kept', '1');
    await store.close();
    clock += 5000;
    const again = make(dir);
    const data = await dump(again);
    expect(data.size).toBe(501);
    expect(data.get('ns0^k1505')).toEqual(['1505', 55_000]);
    expect(again.stats()).toMatchObject({ keys: 501, keysWithTtl: 500 });
  });

  it('keeps every change made while a rewrite runs (writes are not awaited in between)', async () => {
    const dir = freshDir();
    const store = make(dir);
    for (let i = 0; i < 20_000; i++) store.set(`bulk^${i % 97}^k${i}`, String(i));
    const rewrite = store.rewrite();
    const pending: unknown[] = [];
    for (let i = 0; i < 5000; i++) {
      pending.push(store.set(`bulk^${i % 97}^k${i}`, `"changed ${i}"`));
      if (i % 500 === 0) pending.push(store.drop(`bulk^${i % 97}`));
      if (i % 7 === 0) pending.push(store.set(`new^k${i}`, '1', { ttl: 60_000 }));
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(pending);
    const result = await rewrite;
    expect(result.keys).toBeGreaterThan(0);
    const before = await dump(store);
    await store.close();
    expect(readdirSync(dir).sort()).toEqual(['base.2.log', 'incr.2.log', 'manifest']);
    const again = make(dir);
    expect(await dump(again)).toEqual(before);
    expect(again.info().rewrites).toBe(0);
  });

  it('cuts off a torn last record, warns with the offset, and starts', async () => {
    const dir = freshDir();
    const store = make(dir);
    store.set('a', '1');
    store.set('b', '2');
    await store.close();
    const incr = join(dir, 'incr.1.log');
    const good = statSync(incr).size;
    appendFileSync(incr, '1234abcd S\t"c"\t3'); // no newline: the write was cut short
    const warnings: object[] = [];
    const again = make(dir, { logger: { ...quietLogger, warn: (obj) => warnings.push(obj) } });
    expect(await dump(again)).toEqual(
      new Map([
        ['a', ['1', null]],
        ['b', ['2', null]],
      ]),
    );
    expect(statSync(incr).size).toBe(good);
    expect(warnings).toContainEqual(expect.objectContaining({ file: incr, offset: good }));
  });

  it('loses nothing acknowledged with always when power fails: synced prefix plus a garbage tail', async () => {
    const dir = freshDir();
    const store = make(dir, { appendfsync: 'always' });
    for (let i = 0; i < 200; i++) await store.set(`k^${i}`, String(i));
    const incr = join(dir, 'incr.1.log');
    const synced = readFileSync(incr);
    // Writes still in flight when the power went: never acknowledged.
    for (let i = 200; i < 300; i++) void store.set(`k^${i}`, String(i));
    await store.close();
    writeFileSync(
      incr,
      Buffer.concat([synced, Buffer.from('S\t"k^9'), Buffer.from([0, 0xff, 10, 0x41, 10, 7])]),
    );
    const again = make(dir, { appendfsync: 'always' });
    const data = await dump(again);
    for (let i = 0; i < 200; i++) expect(data.get(`k^${i}`)).toEqual([String(i), null]);
    expect(statSync(incr).size).toBe(synced.length);
  });

  it('refuses to start on a damaged record before the end, naming the file and offset', async () => {
    const dir = freshDir();
    const store = make(dir);
    for (let i = 0; i < 10; i++) store.set(`k${i}`, String(i));
    await store.close();
    const incr = join(dir, 'incr.1.log');
    const bytes = readFileSync(incr);
    const third = bytes.indexOf(10, bytes.indexOf(10) + 1) + 1;
    bytes[third + 12]! ^= 1;
    writeFileSync(incr, bytes);
    expect(() => make(dir)).toThrow(`${incr}: checksum mismatch at byte ${third}`);
  });

  it('refuses a damaged last record of the base file: only the file being written can be torn', async () => {
    const dir = freshDir();
    const store = make(dir);
    store.set('a', '1');
    await store.rewrite();
    await store.close();
    appendFileSync(join(dir, 'base.2.log'), 'garbage');
    expect(() => make(dir)).toThrow(/base\.2\.log: incomplete record .* at byte \d+/);
  });

  describe('manifest', () => {
    const setUp = async (): Promise<string> => {
      const dir = freshDir();
      const store = make(dir);
      store.set('a', '1');
      await store.close();
      return dir;
    };

    it('refuses a manifest that lists a missing file', async () => {
      const dir = await setUp();
      rmSync(join(dir, 'incr.1.log'));
      expect(() => make(dir)).toThrow(/manifest: lists incr\.1\.log, which is missing/);
    });

    it('refuses two base files', async () => {
      const dir = await setUp();
      writeFileSync(
        join(dir, 'manifest'),
        'caretkv-log 1\nbase base.1.log\nbase base.1.log\nincr incr.1.log\n',
      );
      expect(() => make(dir)).toThrow(/manifest: line 3: a second base file/);
    });

    it('refuses incremental files out of sequence', async () => {
      const dir = await setUp();
      writeFileSync(join(dir, 'incr.2.log'), '');
      writeFileSync(
        join(dir, 'manifest'),
        formatManifest({ base: 'base.1.log', incr: ['incr.2.log', 'incr.1.log'] }),
      );
      expect(() => make(dir)).toThrow(/manifest: line 4: incr\.1\.log is out of sequence/);
    });

    it('refuses log files without a manifest, and a malformed line', async () => {
      const dir = await setUp();
      writeFileSync(join(dir, 'manifest'), 'caretkv-log 1\nbase ../etc/passwd\nincr incr.1.log\n');
      expect(() => make(dir)).toThrow(/manifest: line 2: expected "base base.N.log"/);
      rmSync(join(dir, 'manifest'));
      expect(() => make(dir)).toThrow(/holds log files \(.*\) but no manifest/);
    });

    it('removes files a crash left behind (an unlisted incremental file, temp files)', async () => {
      const dir = await setUp();
      writeFileSync(join(dir, 'incr.7.log'), '00000000 S\t"x"\t1\n');
      writeFileSync(join(dir, 'base.7.log.tmp'), 'partial');
      const again = make(dir);
      expect(await dump(again)).toEqual(new Map([['a', ['1', null]]]));
      expect(readdirSync(dir).sort()).toEqual(['base.1.log', 'incr.1.log', 'manifest']);
    });
  });

  describe('disk errors', () => {
    /** Real file operations, except that writes (or syncs) fail while `broken` is set. */
    const faulty = (what: 'write' | 'sync') => {
      const state = { broken: false };
      const failure = (): Error => Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      const io: LogIo = {
        ...NODE_IO,
        write: (fd, data) => {
          if (state.broken && what === 'write') throw failure();
          NODE_IO.write(fd, data);
        },
        sync: (fd) => {
          if (state.broken && what === 'sync') throw failure();
          NODE_IO.sync(fd);
        },
        syncInBackground: (fd, done) => {
          if (state.broken && what === 'sync') done(failure());
          else NODE_IO.syncInBackground(fd, done);
        },
      };
      return { state, io };
    };

    for (const [policy, what] of [
      ['always', 'write'],
      ['always', 'sync'],
      ['everysec', 'write'],
    ] as [FsyncPolicy, 'write' | 'sync'][]) {
      it(`${policy}, failing ${what}: never acknowledges, refuses writes, serves reads, recovers`, async () => {
        const dir = freshDir();
        const { state, io } = faulty(what);
        const errors: object[] = [];
        const store = make(dir, {
          appendfsync: policy,
          io,
          intervalMs: 20,
          logger: { ...quietLogger, error: (obj) => errors.push(obj) },
        });
        await store.set('kept', '1');
        state.broken = true;
        const failed = store.set('lost', '2');
        if (policy === 'always') {
          await expect(failed).rejects.toMatchObject({ name: 'StoreError', code: 'DISK_ERROR' });
        } else {
          expect(failed).toBe(true); // everysec answers before the disk; the failure follows
          await expect.poll(() => store.info().diskError).toMatch(/ENOSPC/);
        }
        expect(() => store.set('refused', '3')).toThrow(expect.objectContaining({ code: 'DISK_ERROR' }));
        expect(await store.get('kept')).toBe('1');
        expect(store.info().diskError).toMatch(/ENOSPC/);
        expect(errors).toHaveLength(1);
        state.broken = false;
        await expect.poll(() => store.info().diskError, { interval: 10 }).toBeNull();
        await store.set('after', '4');
        await store.close();
        const again = make(dir, { appendfsync: policy });
        const data = await dump(again);
        expect(data.get('kept')).toEqual(['1', null]);
        expect(data.get('after')).toEqual(['4', null]);
        expect(data.has('refused')).toBe(false);
      });
    }
  });

  it('with always, holds replies, reads and change events until the sync that covers them', async () => {
    const dir = freshDir();
    const seenAtSync: object[] = [];
    const state = { acked: false, read: undefined as string | undefined, events: [] as string[] };
    const io: LogIo = {
      ...NODE_IO,
      sync: (fd) => {
        seenAtSync.push({ ...state, events: [...state.events] });
        NODE_IO.sync(fd);
      },
    };
    const store = make(dir, { appendfsync: 'always', io });
    store.onChange((op, key) => state.events.push(`${op} ${key}`));
    void (store.set('k', '1') as Promise<boolean>).then(() => {
      state.acked = true;
    });
    void (store.get('k') as Promise<string | undefined>).then((v) => {
      state.read = v;
    });
    expect(state).toEqual({ acked: false, read: undefined, events: [] });
    await expect.poll(() => state.acked).toBe(true);
    // When the sync ran, nothing had been answered or pushed yet; after it, everything was.
    expect(seenAtSync).toEqual([{ acked: false, read: undefined, events: [] }]);
    expect(state).toEqual({ acked: true, read: '1', events: ['set k'] });
  });

  it('backs up a consistent copy under load that a new store starts from', async () => {
    const dir = freshDir();
    const store = make(dir, { appendfsync: 'always' });
    let written = 0;
    let stop = false;
    // One writer, strictly in order: any consistent copy holds exactly keys 0..n-1 for some n.
    const load = (async () => {
      while (!stop) await store.set(`seq^${written++}`, String(written));
    })();
    await expect.poll(() => written).toBeGreaterThan(200);
    const ackedBefore = written - 1;
    const backup = await store.backup();
    const ackedAfter = written;
    stop = true;
    await load;
    expect(backup.dir.startsWith(join(dir, 'backups'))).toBe(true);
    const restored = make(backup.dir);
    const keys = [...(await dump(restored)).keys()].map((k) => Number(k.slice(4))).sort((a, b) => a - b);
    expect(keys.length).toBeGreaterThanOrEqual(ackedBefore);
    expect(keys.length).toBeLessThanOrEqual(ackedAfter);
    expect(keys).toEqual(keys.map((_, i) => i));
  });
});
