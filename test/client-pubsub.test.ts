/**
 * The client's pub/sub: `db.subscribe()` / `db.observe()` as async iterators and event emitters,
 * `db.publish()`, bounded buffering, resubscription after a reconnect, and the server's gap and
 * revoked pushes. Against the real server in-process over real sockets, and against a scripted
 * server for the pushes a real one only sends under pressure or a permissions change.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type CaretClient,
  CaretError,
  connect,
  createClient,
  type SubscriptionMessage,
} from '../src/client/index.js';
import { once, waitFor } from './helpers/net.js';
import { startServer, type TestServer } from './helpers/server.js';

const servers: TestServer[] = [];
const clients: CaretClient[] = [];
const fakes: net.Server[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
  for (const f of fakes.splice(0)) await new Promise((resolve) => f.close(resolve));
});

async function start(settings: Record<string, unknown> = {}): Promise<TestServer> {
  const server = await startServer(settings, { logLevel: 'warn' });
  servers.push(server);
  return server;
}

async function client(port: number, options: Parameters<typeof connect>[1] = {}): Promise<CaretClient> {
  const db = await connect({ port, ...options });
  clients.push(db);
  return db;
}

/** Read `n` items from an iterator (without ending it). */
async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const items: T[] = [];
  while (items.length < n) {
    const r = await it.next();
    if (r.done) throw new Error(`the iterator ended after ${items.length} of ${n} items`);
    items.push(r.value);
  }
  return items;
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

async function pubsubInfo(db: CaretClient) {
  return (await db.info()).pubsub;
}

describe('subscribe and publish', () => {
  it('iterates messages in publish order; publish resolves with the delivered count; break unsubscribes', async () => {
    const { port } = await start();
    const sub = await client(port);
    const pub = await client(port);
    const news = sub.subscribe<{ n: number }>('news^*', '^orders^eu^>');
    await news.ready;
    expect(news.patterns).toEqual(['news^*', 'orders^eu^>']);

    expect(await pub.publish('news^eu', { n: 1 })).toBe(1);
    expect(await pub.publish('orders^eu^1', { n: 2 })).toBe(1);
    expect(await pub.publish('sports^eu', { n: 3 })).toBe(0);
    expect(await pub.publish('news^eu', { n: 4 })).toBe(1);

    const seen: SubscriptionMessage<{ n: number }>[] = [];
    for await (const item of news) {
      if (item.type !== 'message') throw new Error(`unexpected ${item.type}`);
      seen.push(item);
      if (seen.length === 3) break;
    }
    expect(seen.map((m) => [m.channel, m.pattern, m.message.n])).toEqual([
      ['news^eu', 'news^*', 1],
      ['orders^eu^1', 'orders^eu^>', 2],
      ['news^eu', 'news^*', 4],
    ]);
    expect(seen.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(typeof seen[0]!.from).toBe('number');
    expect(news.closed).toBe(true);
    // Leaving the loop told the server.
    await waitFor(async () => (await pubsubInfo(pub)).subscriptions === 0, { message: 'the unsubscribe' });
    expect(await pub.publish('news^eu', { n: 5 })).toBe(0);
  });

  it('the event form delivers without buffering; unsubscribe() ends it', async () => {
    const { port } = await start();
    const sub = await client(port);
    const pub = await client(port);
    const s = sub.subscribe('feed');
    const got: unknown[] = [];
    s.on('message', (m) => got.push(m.message));
    const ended = once(s, 'end');
    await s.ready;
    for (let i = 0; i < 5; i++) await pub.publish('feed', i);
    await waitFor(() => got.length === 5);
    expect(got).toEqual([0, 1, 2, 3, 4]);
    expect(s.buffered).toBe(0);
    await s.unsubscribe();
    await ended;
    expect((await pubsubInfo(pub)).subscriptions).toBe(0);
    expect(await s.next()).toEqual({ done: true, value: undefined });
  });

  it('subscriptions sharing a pattern share one server subscription until the last lets go', async () => {
    const { port } = await start();
    const sub = await client(port);
    const pub = await client(port);
    const a = sub.subscribe('x');
    const b = sub.subscribe('x', 'y');
    await Promise.all([a.ready, b.ready]);
    expect((await pubsubInfo(pub)).subscriptions).toBe(2);
    expect(await pub.publish('x', 'one')).toBe(1);
    expect((await take(a, 1))[0]).toMatchObject({ message: 'one' });
    expect((await take(b, 1))[0]).toMatchObject({ message: 'one' });
    await a.unsubscribe();
    expect((await pubsubInfo(pub)).subscriptions).toBe(2);
    expect(await pub.publish('x', 'two')).toBe(1);
    expect((await take(b, 1))[0]).toMatchObject({ message: 'two' });
    await b.unsubscribe();
    expect((await pubsubInfo(pub)).subscriptions).toBe(0);
  });

  it('a slow iterator buffers up to its high-water mark, then drops and reports a gap', async () => {
    const { port } = await start();
    const sub = await client(port);
    const pub = await client(port);
    const s = sub.subscribe(['feed'], { highWaterMark: 3 });
    await s.ready;
    for (let i = 0; i < 10; i++) await pub.publish('feed', i);
    // Pushes for the subscriber were written before the answer to its own later request.
    await sub.ping();
    expect(s.buffered).toBe(3);
    expect(s.dropped).toBe(7);
    const items = await take(s, 4);
    expect(items.map((i) => (i.type === 'gap' ? `gap ${i.dropped}` : i.message))).toEqual([0, 1, 2, 'gap 7']);
    await pub.publish('feed', 'next');
    expect(await take(s, 1)).toMatchObject([{ type: 'message', message: 'next', seq: 11 }]);
    await s.unsubscribe();
  });

  it('refusals end the subscription with the server code: ready rejects and the iterator throws', async () => {
    const { port } = await start();
    const db = await client(port);
    const bad = db.subscribe('a^>^b');
    expect((await rejection(bad.ready)).code).toBe('BAD_CHANNEL');
    expect((await rejection(bad.next())).code).toBe('BAD_CHANNEL');
    expect(await bad.next()).toEqual({ done: true, value: undefined });
    expect((await rejection(db.publish('$sys^x', {}))).code).toBe('NOPERM');
    expect((await rejection(db.publish('news^*', {}))).code).toBe('BAD_CHANNEL');
    // The connection is fine.
    expect(await db.ping()).toBe('PONG');
    expect(() => db.subscribe()).toThrow(/at least one pattern/);
    expect(() => db.subscribe(['a'], { highWaterMark: 0 })).toThrow(/highWaterMark/);
  });

  it('an AbortSignal unsubscribes; close() ends every subscription and its loop', async () => {
    const { port } = await start();
    const db = await client(port);
    const controller = new AbortController();
    const s = db.subscribe(['a'], { signal: controller.signal });
    await s.ready;
    controller.abort();
    expect(s.closed).toBe(true);
    const t = db.subscribe('b');
    await t.ready;
    const loop = (async () => {
      const items = [];
      for await (const item of t) items.push(item);
      return items;
    })();
    await db.close();
    expect(await loop).toEqual([]);
    const late = db.subscribe('c');
    expect((await rejection(late.ready)).code).toBe('CONNECTION_CLOSED');
  });
});

describe('observe', () => {
  it('sees every change kind of matching keys, and a DROP above them', async () => {
    const { port } = await start();
    const obs = await client(port);
    const w = await client(port);
    const users = obs.observe('users^>');
    const posts = obs.observe('posts^*');
    await Promise.all([users.ready, posts.ready]);
    await w.set('users^1^name', 'ada');
    await w.incr('users^1^visits', 2);
    await w.cas('users^1^name', 'ada', 'grace');
    await w.del('users^1^name');
    await w.set('users^2', 0, { ttl: 1 });
    await waitFor(async () => !(await w.exists('users^2')));
    await w.drop('users');
    await w.set('posts^1', 'p');
    const changes = await take(users, 7);
    expect(changes.map((c) => ({ ...c, seq: undefined }))).toEqual([
      { type: 'change', key: 'users^1^name', op: 'set', value: 'ada', seq: undefined },
      { type: 'change', key: 'users^1^visits', op: 'incr', value: 2, seq: undefined },
      { type: 'change', key: 'users^1^name', op: 'cas', value: 'grace', seq: undefined },
      { type: 'change', key: 'users^1^name', op: 'del', seq: undefined },
      { type: 'change', key: 'users^2', op: 'set', value: 0, seq: undefined },
      { type: 'change', key: 'users^2', op: 'expire', seq: undefined },
      { type: 'change', key: 'users', op: 'drop', seq: undefined },
    ]);
    expect(await take(posts, 1)).toMatchObject([{ type: 'change', key: 'posts^1', op: 'set', value: 'p' }]);
    expect(posts.buffered).toBe(0);
    expect(users.buffered).toBe(0);
  });
});

describe('reconnects', () => {
  it('subscribes again on the new connection after the server restarts', async () => {
    const first = await start();
    const port = first.port;
    const sub = await client(port, { retryStrategy: () => 20 });
    const s = sub.subscribe('$sys^>', 'news^>');
    const o = sub.observe('users^>');
    await Promise.all([s.ready, o.ready]);
    const resubscribed = Promise.all([once(s, 'resubscribed'), once(o, 'resubscribed')]);

    await first.close();
    servers.splice(servers.indexOf(first), 1);
    // A graceful stop announced itself on $sys^shutdown first.
    expect(await take(s, 1)).toMatchObject([
      { type: 'message', channel: '$sys^shutdown', from: '$server', message: { graceMs: 5000 } },
    ]);

    const second = await start({ port });
    await resubscribed;
    const pub = await client(second.port);
    expect(await pub.publish('news^eu', 'back')).toBe(1);
    await pub.set('users^1', 1);
    expect(await take(s, 1)).toMatchObject([
      { type: 'message', channel: 'news^eu', message: 'back', seq: 1 },
    ]);
    expect(await take(o, 1)).toMatchObject([{ type: 'change', key: 'users^1', op: 'set' }]);
    expect((await pubsubInfo(pub)).subscriptions).toBe(2);
  });

  it('a lazy client connects for a subscription and the handshake subscribes it', async () => {
    const { port } = await start();
    const db = createClient({ port, lazyConnect: true });
    clients.push(db);
    const s = db.subscribe('a');
    expect(db.state).not.toBe('wait');
    await s.ready;
    const pub = await client(port);
    expect(await pub.publish('a', 1)).toBe(1);
    expect(await take(s, 1)).toMatchObject([{ message: 1 }]);
  });
});

/**
 * A scripted server: answers every request with `result: 1` (or the error `refuse` returns) and
 * lets the test push lines of its own to every connection.
 */
async function fakeServer(refuse: (req: Record<string, unknown>) => string | undefined = () => undefined) {
  const sockets = new Set<net.Socket>();
  const received: Record<string, unknown>[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const req = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        received.push(req);
        const code = refuse(req);
        socket.write(
          `${JSON.stringify(code ? { ok: false, error: { code, message: 'scripted' } } : { ok: true, result: 1 })}\n`,
        );
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  fakes.push(server);
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    push: (push: object) => {
      for (const s of sockets) s.write(`${JSON.stringify(push)}\n`);
    },
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

const message = (pattern: string, m: unknown, seq: number) => ({
  event: 'message',
  channel: pattern,
  pattern,
  message: m,
  from: 7,
  seq,
});

describe('gap and revoked pushes', () => {
  it('a server gap is an item in the iteration and a gap event', async () => {
    const fake = await fakeServer();
    const db = await client(fake.port);
    const s = db.subscribe('feed');
    await s.ready;
    const gaps: number[] = [];
    s.on('gap', (g) => gaps.push(g.dropped));
    fake.push(message('feed', 1, 1));
    fake.push({ event: 'gap', dropped: 5 });
    fake.push(message('feed', 7, 7));
    const items = await take(s, 3);
    expect(items.map((i) => (i.type === 'gap' ? `gap ${i.dropped}` : i.message))).toEqual([1, 'gap 5', 7]);
    expect(gaps).toEqual([5]);
  });

  it('a backend gap (cluster mode) is a gap item with reason backend, and a gap event', async () => {
    const fake = await fakeServer();
    const db = await client(fake.port);
    const s = db.subscribe('feed');
    await s.ready;
    const gaps: unknown[] = [];
    s.on('gap', (g) => gaps.push(g));
    fake.push(message('feed', 1, 1));
    fake.push({ event: 'gap', reason: 'backend' });
    fake.push(message('feed', 2, 2));
    const items = await take(s, 3);
    expect(items).toMatchObject([
      { message: 1 },
      { type: 'gap', dropped: 0, reason: 'backend' },
      { message: 2 },
    ]);
    expect(gaps).toEqual([{ type: 'gap', dropped: 0, reason: 'backend' }]);
  });

  it('revoking some patterns keeps the rest; revoking the last throws SUBSCRIPTION_REVOKED', async () => {
    const fake = await fakeServer();
    const db = await client(fake.port);
    const s = db.subscribe('a', 'b');
    await s.ready;
    const revoked: unknown[] = [];
    s.on('revoked', (r) => revoked.push(r));
    fake.push({ event: 'revoked', channels: ['a'], keys: [], reason: 'reload' });
    fake.push(message('b', 'still here', 1));
    expect(await take(s, 1)).toMatchObject([{ message: 'still here' }]);
    expect(s.patterns).toEqual(['b']);
    fake.push(message('b', 'buffered', 2));
    fake.push({ event: 'revoked', channels: ['b'], keys: [], reason: 'no longer allowed' });
    await waitFor(() => s.closed);
    expect(await take(s, 1)).toMatchObject([{ message: 'buffered' }]);
    const err = await rejection(s.next());
    expect(err.code).toBe('SUBSCRIPTION_REVOKED');
    expect(err.message).toMatch(/no longer allowed/);
    expect(revoked).toEqual([
      { patterns: ['a'], reason: 'reload' },
      { patterns: ['b'], reason: 'no longer allowed' },
    ]);
    // Revoked patterns are not subscribed again after a reconnect.
    const before = fake.received.length;
    const t = db.subscribe('c');
    await t.ready;
    fake.dropConnections();
    await waitFor(() => fake.received.slice(before).filter((r) => r.action === 'SUBSCRIBE').length === 2);
    expect(fake.received.slice(before).filter((r) => r.action === 'SUBSCRIBE')).toEqual([
      { action: 'SUBSCRIBE', channels: ['c'] },
      { action: 'SUBSCRIBE', channels: ['c'] },
    ]);
  });

  it('a pattern refused on resubscription ends its subscription, not the connection', async () => {
    let forbidden = false;
    const fake = await fakeServer((req) =>
      forbidden && Array.isArray(req.channels) && req.channels.includes('secret') ? 'NOPERM' : undefined,
    );
    const db = await client(fake.port, { retryStrategy: () => 10 });
    const open = db.subscribe('open');
    const secret = db.subscribe('secret');
    await Promise.all([open.ready, secret.ready]);
    forbidden = true;
    const back = once(open, 'resubscribed');
    fake.dropConnections();
    await back;
    expect((await rejection(secret.next())).code).toBe('NOPERM');
    expect(open.closed).toBe(false);
    fake.push(message('open', 'ok', 1));
    expect(await take(open, 1)).toMatchObject([{ message: 'ok' }]);
  });
});
