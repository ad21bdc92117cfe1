/**
 * The client library against the real server (transport + protocol handler + memory store),
 * in-process on an ephemeral port, over real sockets.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CaretClient, CaretError, connect, createClient } from '../src/client/index.js';
import { createProtocolHandler } from '../src/handler.js';
import { MemoryStore } from '../src/store/memory.js';
import { waitFor } from './helpers/net.js';
import { startServer, type TestServer } from './helpers/server.js';

interface Running {
  server: TestServer;
  store: MemoryStore;
}

async function startReal(port = 0, store = new MemoryStore()): Promise<Running> {
  let server: TestServer | undefined;
  const NONE = { connections: 0, connectionsTotal: 0, connectionsRejected: 0 };
  // INFO reads the transport's counters, which exist only once the server does.
  const handler = createProtocolHandler({ store, connections: () => server?.server.stats ?? NONE });
  server = await startServer({ port }, { handler, logLevel: 'warn' });
  return { server, store };
}

let running: Running[] = [];
const clients: CaretClient[] = [];

async function client(port: number, options: Parameters<typeof connect>[1] = {}): Promise<CaretClient> {
  const db = await connect({ port, ...options });
  clients.push(db);
  return db;
}

async function rejection(p: Promise<unknown>): Promise<CaretError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CaretError);
    return err as CaretError;
  }
  throw new Error('expected the promise to reject');
}

let port = 0;
let db: CaretClient;

beforeEach(async () => {
  const r = await startReal();
  running.push(r);
  port = r.server.port;
  db = await client(port);
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const r of running) {
    await r.server.close();
    r.store.close();
  }
  running = [];
});

describe('typed methods', () => {
  it('ping, echo, help', async () => {
    expect(await db.ping()).toBe('PONG');
    const value = { a: [1, 'two', null, true, { 'ü^': 3.5 }], b: '' };
    expect(await db.echo(value)).toEqual(value);
    const help = await db.help();
    expect(help.map((h) => h.action)).toEqual(expect.arrayContaining(['SET', 'GET', 'INFO']));
  });

  it('set / get / getOr / del / exists, with namespaces and conditions', async () => {
    expect(await db.set('users^42^name', 'Ada Lovelace')).toBe(true);
    expect(await db.get<string>('users^42^name')).toBe('Ada Lovelace');
    expect(await db.get('name', { namespace: 'users^42' })).toBe('Ada Lovelace');
    expect(await db.get('^users^42^name')).toBe('Ada Lovelace');
    expect(await db.set('users^42^name', 'Grace', { ifAbsent: true })).toBe(false);
    expect(await db.set('users^43^name', 'Grace', { ifPresent: true })).toBe(false);
    expect(await db.set('42^name', 'Ada', { namespace: 'users', ifPresent: true })).toBe(true);
    expect(await db.exists('users^42^name')).toBe(true);
    expect(await db.set('nothing', null)).toBe(true);
    expect(await db.getOr('nothing', 'fallback')).toBeNull();

    expect(await db.del('users^42^name')).toBe(true);
    expect(await db.exists('users^42^name')).toBe(false);
    const missing = await rejection(db.get('users^42^name'));
    expect(missing.code).toBe('KEY_NOT_FOUND');
    expect(missing.action).toBe('GET');
    expect(missing.message).toContain('GET users^42^name');
    expect(await db.getOr('users^42^name', 'fallback')).toBe('fallback');
    expect((await rejection(db.del('users^42^name'))).code).toBe('KEY_NOT_FOUND');
    expect((await rejection(db.get('a^^b'))).code).toBe('BAD_KEY');
    // getOr only swallows KEY_NOT_FOUND.
    expect((await rejection(db.getOr('a^^b', 1))).code).toBe('BAD_KEY');
  });

  it('incr and cas', async () => {
    expect(await db.incr('n')).toBe(1);
    expect(await db.incr('n', 41)).toBe(42);
    expect(await db.incr('n', -2)).toBe(40);
    expect(await db.incr('hits', 1, { namespace: 'stats' })).toBe(1);
    await db.set('s', 'text');
    expect((await rejection(db.incr('s'))).code).toBe('WRONG_TYPE');
    await db.set('big', Number.MAX_SAFE_INTEGER);
    expect((await rejection(db.incr('big'))).code).toBe('OVERFLOW');

    await db.set('doc', { v: 1, tags: ['a'] });
    expect(await db.cas('doc', { tags: ['a'], v: 1 }, { v: 2 })).toBe(true);
    expect(await db.cas('doc', { v: 1 }, { v: 3 })).toBe(false);
    expect(await db.get('doc')).toEqual({ v: 2 });
  });

  it('mget and mset (object, Map, pairs)', async () => {
    expect(await db.mset({ 'm^a': 1, 'm^b': { x: 2 } })).toBe(true);
    expect(await db.mset(new Map([['m^c', [3]]]))).toBe(true);
    expect(await db.mset([['d', null]], { namespace: 'm' })).toBe(true);
    expect(await db.mget(['m^a', 'm^b', 'm^c', 'm^d', 'm^missing'])).toEqual({
      'm^a': 1,
      'm^b': { x: 2 },
      'm^c': [3],
      'm^d': null,
    });
    expect(await db.mget(['a', 'd'], { namespace: 'm' })).toEqual({ a: 1, d: null });
    // Atomic: one bad key and nothing is written.
    expect((await rejection(db.mset({ 'm^e': 1, 'm^^f': 2 }))).code).toBe('BAD_KEY');
    expect(await db.exists('m^e')).toBe(false);
  });

  it('keys, namespaces and the cursor iterators', async () => {
    const entries: Record<string, number> = {};
    for (let i = 0; i < 250; i++) entries[`list^k${String(i).padStart(3, '0')}`] = i;
    entries['list^sub^x'] = 1;
    entries['list^other^y^z'] = 1;
    await db.mset(entries);

    const page = await db.keys({ namespace: 'list', limit: 10 });
    expect(page.keys).toHaveLength(10);
    expect(page.keys[0]).toBe('k000');
    expect(page.next).toBe('k009');
    const second = await db.keys({ namespace: 'list', after: page.next!, limit: 10 });
    expect(second.keys[0]).toBe('k010');

    const all: string[] = [];
    for await (const k of db.scanKeys('list', { pageSize: 7 })) all.push(k);
    expect(all).toEqual(
      Object.keys(entries)
        .filter((k) => k.split('^').length === 2)
        .map((k) => k.slice(5)),
    );
    const viaDefaultPages: string[] = [];
    for await (const k of db.scanKeys('list')) viaDefaultPages.push(k);
    expect(viaDefaultPages).toEqual(all);

    expect(await db.namespaces({ namespace: 'list' })).toEqual({ namespaces: ['other', 'sub'], next: null });
    const top: string[] = [];
    for await (const ns of db.scanNamespaces()) top.push(ns);
    expect(top).toEqual(['list']);
    const empty: string[] = [];
    for await (const k of db.scanKeys('nowhere')) empty.push(k);
    expect(empty).toEqual([]);
  });

  it('count and drop', async () => {
    await db.mset({ 'a^1': 1, 'a^2': 2, 'a^b^3': 3, c: 4 });
    expect(await db.count('a')).toBe(3);
    expect(await db.count()).toBe(4);
    expect(await db.drop('a')).toBe(3);
    expect(await db.count()).toBe(1);
    expect(await db.drop('a')).toBe(0);
  });

  it('expire, ttl and persist', async () => {
    await db.set('t', 1, { ttl: 60_000 });
    const left = await db.ttl('t');
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(60_000);
    expect(await db.persist('t')).toBe(true);
    expect(await db.ttl('t')).toBeNull();
    expect(await db.expire('t', 30_000)).toBe(true);
    expect(await db.ttl('t')).toBeGreaterThan(0);
    expect((await rejection(db.expire('missing', 10))).code).toBe('KEY_NOT_FOUND');
    // Real time, once: a short TTL really expires.
    await db.set('short', 1, { ttl: 20 });
    await waitFor(async () => !(await db.exists('short')), { message: 'the key to expire' });
    expect(await db.getOr('short', 'gone')).toBe('gone');
  });

  it('info', async () => {
    await db.set('x', 1);
    const info = await db.info();
    expect(info.keys).toBe(1);
    expect(info.connections.current).toBeGreaterThanOrEqual(1);
    expect(info.commands.byAction.SET).toBe(1);
    expect(typeof info.version).toBe('string');
  });

  it('send: raw requests, case-insensitive actions, server-side validation errors', async () => {
    expect(await db.send({ action: 'set', key: 'raw', value: [1] })).toBe(true);
    expect(await db.send({ action: 'GET', key: 'raw', id: 'mine' })).toEqual([1]);
    const unknown = await rejection(db.send({ action: 'FLY' }));
    expect(unknown.code).toBe('UNKNOWN_ACTION');
    expect(unknown.message).toMatch(/^FLY: /);
    const bad = await rejection(db.send({ action: 'SET', key: 'k', value: 1, ttl: 'soon' }));
    expect(bad.code).toBe('BAD_REQUEST');
    expect(bad.message).toContain('ttl');
    expect((await rejection(db.set('k', undefined))).code).toBe('BAD_REQUEST');
    expect(await db.ping()).toBe('PONG');
  });
});

describe('pipelining and concurrency', () => {
  it('10000 requests made in one tick are all answered, in order', async () => {
    const n = 10_000;
    const incrs: Promise<number>[] = [];
    for (let i = 0; i < n; i++) incrs.push(db.incr('pipelined'));
    const sets: Promise<boolean>[] = [];
    for (let i = 0; i < n; i++) sets.push(db.set(`p^${i}`, i));
    const results = await Promise.all(incrs);
    expect(results).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect((await Promise.all(sets)).every((x) => x === true)).toBe(true);
    expect(await db.count('p')).toBe(n);
    expect(db.pendingCount).toBe(0);
  });

  it('1000 sequential SETs do not overwrite each other', async () => {
    for (let i = 0; i < 1000; i++) await db.set(`seq^${i}`, { i, name: `item ${i}` });
    const keys = Array.from({ length: 1000 }, (_, i) => `seq^${i}`);
    const values = await db.mget(keys);
    for (let i = 0; i < 1000; i++) expect(values[`seq^${i}`]).toEqual({ i, name: `item ${i}` });
    expect(await db.count('seq')).toBe(1000);
  });

  it('50 concurrent clients on one key: no errors, and INCR counts exactly', async () => {
    const many = await Promise.all(Array.from({ length: 50 }, () => client(port)));
    const rounds = 100;
    const seen = new Set<unknown>();
    await Promise.all(
      many.map(async (c, id) => {
        for (let r = 0; r < rounds; r++) {
          // Each round: one write, one read and one increment of the shared keys, pipelined.
          const [written, read, counted] = await Promise.all([
            c.set('hot', { by: id, round: r }),
            c.get<{ by: number; round: number }>('hot'),
            c.incr('counter'),
          ]);
          expect(written).toBe(true);
          expect(typeof counted).toBe('number');
          seen.add(read.by);
        }
      }),
    );
    expect(await db.get('counter')).toBe(50 * rounds);
    // Every read returned a whole value some client wrote.
    for (const by of seen) expect(by).toBeGreaterThanOrEqual(0);
    await Promise.all(many.map((c) => c.close()));
    expect(many.every((c) => c.state === 'closed')).toBe(true);
  });
});

describe('connection lifecycle against the real server', () => {
  it('a server restart mid-run: every request settles, queued ones go through, nothing is lost silently', async () => {
    const first = running[0]!;
    const c = await client(port, { retryStrategy: () => 20 });
    const events: string[] = [];
    c.on('reconnecting', () => events.push('reconnecting'));
    c.on('ready', () => events.push('ready'));
    c.on('error', () => {});

    // Keep a stream of pipelined INCRs going across the restart.
    let ok = 0;
    const failures = new Map<string, number>();
    let running_ = true;
    const load = (async () => {
      while (running_) {
        const batch = Array.from({ length: 50 }, () => c.incr('restart^n'));
        for (const r of await Promise.allSettled(batch)) {
          if (r.status === 'fulfilled') ok++;
          else {
            expect(r.reason).toBeInstanceOf(CaretError);
            const code = (r.reason as CaretError).code;
            failures.set(code, (failures.get(code) ?? 0) + 1);
          }
        }
      }
    })();
    await waitFor(() => ok >= 500, { message: 'some load before the restart' });

    await first.server.close();
    await waitFor(() => c.state === 'reconnecting' || c.state === 'connecting', {
      message: 'the client to notice',
    });
    // Requests made while the server is down wait in the offline queue.
    const queued = [c.set('restart^queued', 'yes'), c.echo('while down')];
    expect(c.offlineCount).toBeGreaterThanOrEqual(2);

    const second = await startReal(port, first.store);
    running.push(second);
    expect(await Promise.all(queued)).toEqual([true, 'while down']);
    const okAtRestart = ok;
    await waitFor(() => ok >= okAtRestart + 500, { message: 'load to continue after the restart' });
    running_ = false;
    await load;

    expect(events).toContain('reconnecting');
    expect(events.at(-1)).toBe('ready');
    // A graceful restart costs latency, not errors: the shutdown push tells the client which
    // requests never ran, and it re-sends exactly those.
    expect([...failures]).toEqual([]);
    expect(await c.get<number>('restart^n')).toBe(ok);
  });

  it('close() waits for in-flight requests; destroy() rejects them at once', async () => {
    const closing = await client(port);
    const answered = Array.from({ length: 1000 }, (_, i) => closing.set(`close^${i}`, i));
    const closed = closing.close();
    expect((await rejection(closing.ping())).code).toBe('CONNECTION_CLOSED');
    expect((await Promise.all(answered)).every((x) => x === true)).toBe(true);
    await closed;
    expect(closing.state).toBe('closed');
    expect(await db.count('close')).toBe(1000);

    const destroyed = await client(port);
    const dropped = Array.from({ length: 100 }, (_, i) => destroyed.set(`destroy^${i}`, i));
    destroyed.destroy();
    for (const p of dropped) expect((await rejection(p)).code).toBe('CONNECTION_CLOSED');
    expect(destroyed.state).toBe('closed');
  });

  it('offline queue bound and first-connect failure against a stopped server', async () => {
    const r = running[0]!;
    await r.server.close();
    expect((await rejection(connect({ port }))).code).toBe('CONNECT_FAILED');

    const lazy = createClient({ port, lazyConnect: true, retryFirstConnect: true, maxOfflineQueue: 3 });
    clients.push(lazy);
    lazy.on('error', () => {});
    const waiting = [lazy.set('q^1', 1), lazy.set('q^2', 2), lazy.set('q^3', 3)];
    expect((await rejection(lazy.set('q^4', 4))).code).toBe('OFFLINE_QUEUE_FULL');

    running.push(await startReal(port, r.store));
    expect(await Promise.all(waiting)).toEqual([true, true, true]);
    expect(await lazy.count('q')).toBe(3);
  });
});
