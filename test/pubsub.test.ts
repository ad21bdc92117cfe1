/**
 * Pub/sub and key observing over real sockets: the composition root (broker wired to the store
 * and the sessions), raw NDJSON clients, and subscribers that stop reading.
 */
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, destroyAllSockets, once, waitFor } from './helpers/net.js';
import { startServer, type TestServer } from './helpers/server.js';

type Line = Record<string, unknown> & {
  ok?: boolean;
  event?: string;
  result?: unknown;
  error?: { code: string; message: string };
};

/** A raw client that sorts what arrives into responses (`ok`) and pushes (`event`). */
class Client {
  readonly responses: Line[] = [];
  readonly pushes: Line[] = [];
  private buffer = '';

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.take(text));
  }

  static async open(port: number): Promise<Client> {
    return new Client(await connect(port));
  }

  take(text: string): void {
    this.buffer += text;
    let i = this.buffer.indexOf('\n');
    while (i !== -1) {
      const line = JSON.parse(this.buffer.slice(0, i)) as Line;
      this.buffer = this.buffer.slice(i + 1);
      // A push has `event` and never `ok`: the two never mix up.
      if ('ok' in line) {
        expect(line).not.toHaveProperty('event');
        this.responses.push(line);
      } else {
        expect(line).toHaveProperty('event');
        this.pushes.push(line);
      }
      i = this.buffer.indexOf('\n');
    }
  }

  send(...requests: object[]): void {
    this.socket.write(requests.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }

  /** Sends one request and resolves with its response (by id). */
  async call(request: Record<string, unknown>): Promise<Line> {
    const id = `r${++Client.ids}`;
    this.send({ ...request, id });
    const find = () => this.responses.find((r) => r.id === id);
    await waitFor(() => find() !== undefined, {
      message: `the response to ${JSON.stringify(request).slice(0, 80)}`,
    });
    return find()!;
  }

  async result(request: Record<string, unknown>): Promise<unknown> {
    const response = await this.call(request);
    expect(response, JSON.stringify(response.error)).toMatchObject({ ok: true });
    return response.result;
  }

  static ids = 0;
}

let server: TestServer | undefined;
afterEach(async () => {
  destroyAllSockets();
  await server?.close();
  server = undefined;
});

async function start(settings: Record<string, unknown> = {}): Promise<TestServer> {
  server = await startServer({ logLevel: 'debug', ...settings });
  return server;
}

interface PubsubInfo {
  subscribers: number;
  subscriptions: number;
  observations: number;
  publishes: number;
  messagesDelivered: number;
  dropped: number;
  slowDisconnected: number;
  refused: { total: number; byCode: Record<string, number> };
}

async function info(c: Client): Promise<PubsubInfo> {
  return ((await c.result({ action: 'INFO' })) as { pubsub: never }).pubsub;
}

describe('pub/sub over TCP', () => {
  it('delivers a publish to every matching subscriber, stamped by the server', async () => {
    const { port } = await start();
    const a = await Client.open(port);
    const b = await Client.open(port);
    const pub = await Client.open(port);
    expect(await a.result({ action: 'SUBSCRIBE', channels: ['news^*', 'orders^eu^>'] })).toBe(2);
    expect(await b.result({ action: 'subscribe', channels: ['news^eu'] })).toBe(1);

    expect(await pub.result({ action: 'PUBLISH', channel: 'news^eu', message: { headline: 'hi' } })).toBe(2);
    expect(await pub.result({ action: 'PUBLISH', channel: 'orders^eu^1^lines', message: [1] })).toBe(1);
    expect(await pub.result({ action: 'PUBLISH', channel: 'orders^eu', message: null })).toBe(0);
    // The publisher cannot choose its `from`.
    const forged = await pub.call({ action: 'PUBLISH', channel: 'news^eu', message: 1, from: 'server' });
    expect(forged.error).toEqual({ code: 'BAD_REQUEST', message: 'from: unknown field' });

    await waitFor(() => a.pushes.length === 2 && b.pushes.length === 1);
    const from = a.pushes[0]!.from;
    expect(typeof from).toBe('number');
    expect(a.pushes).toEqual([
      { event: 'message', channel: 'news^eu', pattern: 'news^*', message: { headline: 'hi' }, from, seq: 1 },
      { event: 'message', channel: 'orders^eu^1^lines', pattern: 'orders^eu^>', message: [1], from, seq: 2 },
    ]);
    expect(b.pushes).toEqual([
      { event: 'message', channel: 'news^eu', pattern: 'news^eu', message: { headline: 'hi' }, from, seq: 1 },
    ]);
    // A subscribed connection still runs every other action.
    expect(await a.result({ action: 'SET', key: 'k', value: 1 })).toBe(true);
    expect(await a.result({ action: 'UNSUBSCRIBE' })).toBe(0);
    expect(await pub.result({ action: 'PUBLISH', channel: 'news^eu', message: 2 })).toBe(1);
  });

  it('keeps $ channels for the server: NOPERM for clients, no wildcard reaches them', async () => {
    const srv = await start();
    const all = await Client.open(srv.port);
    const sys = await Client.open(srv.port);
    const evil = await Client.open(srv.port);
    await all.result({ action: 'SUBSCRIBE', channels: ['>', '*^shutdown'] });
    await sys.result({ action: 'SUBSCRIBE', channels: ['$sys^>'] });
    const refused = await evil.call({ action: 'PUBLISH', channel: '$sys^shutdown', message: {} });
    expect(refused.error?.code).toBe('NOPERM');
    expect((await evil.call({ action: 'PUBLISH', channel: '$SYS^shutdown', message: {} })).error?.code).toBe(
      'NOPERM',
    );
    expect((await info(evil)).refused.byCode).toEqual({ NOPERM: 2 });
    expect(srv.logs.some((l) => l.code === 'NOPERM' && l.level === 40)).toBe(true);

    // A graceful stop announces itself on $sys^shutdown, to `$sys^>` only.
    const closed = srv.close();
    server = undefined;
    // (The connection's own `shutdown` push follows; only messages matter here.)
    await waitFor(() => sys.pushes.some((p) => p.event === 'message'));
    expect(sys.pushes.filter((p) => p.event === 'message')).toEqual([
      {
        event: 'message',
        channel: '$sys^shutdown',
        pattern: '$sys^>',
        message: { graceMs: 5000 },
        from: '$server',
        seq: 1,
      },
    ]);
    await closed;
    expect(all.pushes.filter((p) => p.event === 'message')).toEqual([]);
  });

  it('refuses malformed channels and oversized messages, and rate-limits publishers without closing them', async () => {
    const { port } = await start({ maxPublishRate: 5, maxMessageBytes: 100 });
    const c = await Client.open(port);
    expect((await c.call({ action: 'SUBSCRIBE', channels: ['a^>^b'] })).error?.code).toBe('BAD_CHANNEL');
    expect((await c.call({ action: 'PUBLISH', channel: 'a^*', message: 1 })).error?.code).toBe('BAD_CHANNEL');
    expect((await c.call({ action: 'OBSERVE', keys: ['a^^b'] })).error?.code).toBe('BAD_KEY');
    const big = await c.call({ action: 'PUBLISH', channel: 'a', message: 'x'.repeat(200) });
    expect(big.error?.code).toBe('MESSAGE_TOO_LARGE');
    const results = [];
    for (let i = 0; i < 10; i++) results.push(await c.call({ action: 'PUBLISH', channel: 'a', message: i }));
    expect(results.some((r) => r.error?.code === 'RATE_LIMITED')).toBe(true);
    expect(await c.result({ action: 'PING' })).toBe('PONG');
  });
});

describe('observing keys over TCP', () => {
  it('sees every change kind', async () => {
    const { port } = await start();
    const o = await Client.open(port);
    const w = await Client.open(port);
    expect(await o.result({ action: 'OBSERVE', keys: ['users^>'] })).toBe(1);
    await w.result({ action: 'SET', key: 'users^1^name', value: 'ada' });
    await w.result({ action: 'INCR', key: 'users^1^visits', by: 2 });
    await w.result({ action: 'CAS', key: 'users^1^name', expected: 'ada', value: 'grace' });
    await w.result({ action: 'DEL', key: 'users^1^name' });
    await w.result({ action: 'SET', key: 'users^2', value: 0, ttl: 1 });
    await waitFor(async () => (await w.call({ action: 'EXISTS', key: 'users^2' })).result === false);
    await w.result({ action: 'DROP', namespace: 'users' });
    await w.result({ action: 'SET', key: 'posts^1', value: 1 });
    await waitFor(() => o.pushes.length >= 6);
    expect(o.pushes.map(({ seq, ...p }) => p)).toEqual([
      { event: 'change', key: 'users^1^name', op: 'set', value: 'ada' },
      { event: 'change', key: 'users^1^visits', op: 'incr', value: 2 },
      { event: 'change', key: 'users^1^name', op: 'cas', value: 'grace' },
      { event: 'change', key: 'users^1^name', op: 'del' },
      { event: 'change', key: 'users^2', op: 'set', value: 0 },
      { event: 'change', key: 'users^2', op: 'expire' },
      { event: 'change', key: 'users', op: 'drop' },
    ]);
  });
});

describe('slow and vanished subscribers', () => {
  /**
   * Publishes 16 KiB messages on `feed` in pipelined batches, each batch answered before the next,
   * until `done()` holds: the kernel's socket buffers (which autotune, up to tens of MB on
   * loopback) decide how much a non-reading peer absorbs, so the test waits for the effect rather
   * than guessing a volume. Bounded at 256 MiB. Returns how many were published.
   */
  async function floodUntil(pub: Client, done: () => boolean | Promise<boolean>): Promise<number> {
    const payload = 'x'.repeat(16 * 1024);
    let sent = 0;
    while (!(await done())) {
      if (sent >= 16 * 1024) throw new Error(`still not done after ${sent} messages (256 MiB)`);
      const before = pub.responses.length;
      pub.send(
        ...Array.from({ length: 100 }, (_, j) => ({
          action: 'PUBLISH',
          channel: 'feed',
          message: { i: sent + j, payload },
        })),
      );
      await waitFor(() => pub.responses.length === before + 100, {
        timeoutMs: 20_000,
        message: 'publish responses',
      });
      expect(pub.responses.slice(before).every((r) => r.ok === true)).toBe(true);
      sent += 100;
    }
    return sent;
  }

  it('drop policy: a subscriber that never reads gets a gap; a healthy one gets everything', async () => {
    const { port } = await start({ subscriberBuffer: 64 * 1024 });
    const slow = await Client.open(port);
    const healthy = await Client.open(port);
    const pub = await Client.open(port);
    await slow.result({ action: 'SUBSCRIBE', channels: ['feed'] });
    await healthy.result({ action: 'SUBSCRIBE', channels: ['feed'] });
    slow.socket.pause();

    const n = await floodUntil(pub, async () => (await info(pub)).dropped > 0);
    await waitFor(() => healthy.pushes.length === n, {
      timeoutMs: 20_000,
      message: 'the healthy subscriber',
    });
    expect(healthy.pushes.map((p) => (p.message as { i: number }).i)).toEqual(
      Array.from({ length: n }, (_, i) => i),
    );
    const dropped = (await info(pub)).dropped;
    expect(dropped).toBeGreaterThan(0);

    // It reads again: it learns how many it lost, and every seq is accounted for.
    slow.socket.resume();
    // The gap comes once its output has flushed; publishing only then means 'last' cannot be
    // dropped too (publishing right away raced the drain on a busy machine).
    await waitFor(() => slow.pushes.some((p) => p.event === 'gap'), { message: 'the gap' });
    await pub.result({ action: 'PUBLISH', channel: 'feed', message: 'last' });
    await waitFor(() => slow.pushes.at(-1)?.message === 'last', { message: 'the last message' });
    const gaps = slow.pushes.filter((p) => p.event === 'gap');
    const messages = slow.pushes.filter((p) => p.event === 'message');
    expect(gaps.length).toBeGreaterThan(0);
    expect(gaps.reduce((sum, g) => sum + (g.dropped as number), 0)).toBe(dropped);
    expect(messages.length + dropped).toBe(n + 1);
    expect(messages.at(-1)!.seq).toBe(n + 1);
    expect(await slow.result({ action: 'PING' })).toBe('PONG');
  });

  it('drop policy: a subscriber that catches up after the last publish gets its gap without another push', async () => {
    // A bound far below the socket's 64 KiB high-water mark: the connection never congests, so
    // only a flush notification can tell the server the subscriber caught up.
    const { port } = await start({ subscriberBuffer: 32 * 1024 });
    const sub = await Client.open(port);
    const pub = await Client.open(port);
    await sub.result({ action: 'SUBSCRIBE', channels: ['feed'] });
    sub.socket.pause();

    // Publish until the last PUBLISH is dropped (it answers 0 deliveries); then publish no more.
    // Each answer says whether its message (seq = its index + 1) was written or dropped.
    const payload = 'x'.repeat(8 * 1024);
    const delivered: number[] = [];
    while (delivered.at(-1) !== 0) {
      if (delivered.length >= 16 * 1024) throw new Error('still no drop after 128 MiB');
      const before = pub.responses.length;
      pub.send(
        ...Array.from({ length: 100 }, (_, j) => ({
          action: 'PUBLISH',
          channel: 'feed',
          message: { i: delivered.length + j, payload },
        })),
      );
      await waitFor(() => pub.responses.length === before + 100, { message: 'publish responses' });
      for (const r of pub.responses.slice(before)) delivered.push(r.result as number);
    }
    const n = delivered.length;
    const dropped = delivered.filter((d) => d === 0).length;
    expect(dropped).toBeGreaterThan(0);
    expect((await info(pub)).dropped).toBe(dropped);

    // What the subscriber must read: each written message in order, and before each one that
    // follows drops, a gap counting them; the drops at the end are reported by a final gap.
    const expected: unknown[] = [];
    let run = 0;
    delivered.forEach((d, i) => {
      if (d === 0) {
        run++;
        return;
      }
      if (run > 0) expected.push({ event: 'gap', dropped: run });
      run = 0;
      expected.push({ event: 'message', seq: i + 1, i });
    });
    expected.push({ event: 'gap', dropped: run });

    sub.socket.resume();
    await waitFor(() => sub.pushes.length >= expected.length, {
      timeoutMs: 20_000,
      message: `${expected.length} pushes (the final gap among them)`,
    });
    expect(
      sub.pushes.map((p) =>
        p.event === 'gap' ? p : { event: p.event, seq: p.seq, i: (p.message as { i: number }).i },
      ),
    ).toEqual(expected);
    // Every one of the n publishes is accounted for: delivered, or counted in a gap.
    const gapped = sub.pushes.reduce((sum, p) => sum + (p.event === 'gap' ? (p.dropped as number) : 0), 0);
    expect(sub.pushes.filter((p) => p.event === 'message').length + gapped).toBe(n);
    expect(await sub.result({ action: 'PING' })).toBe('PONG');
    expect(sub.pushes).toHaveLength(expected.length);
  });

  it('disconnect policy: the slow subscriber is closed with a logged reason; the healthy one gets everything', async () => {
    const srv = await start({ subscriberBuffer: 64 * 1024, slowSubscriber: 'disconnect' });
    const slow = await Client.open(srv.port);
    const healthy = await Client.open(srv.port);
    const pub = await Client.open(srv.port);
    await slow.result({ action: 'SUBSCRIBE', channels: ['feed'] });
    await healthy.result({ action: 'SUBSCRIBE', channels: ['feed'] });
    slow.socket.pause();
    const n = await floodUntil(pub, async () => (await info(pub)).slowDisconnected > 0);
    await waitFor(() => healthy.pushes.length === n, {
      timeoutMs: 20_000,
      message: 'the healthy subscriber',
    });
    // Reading again, it finds its connection closed.
    const slowClosed = once(slow.socket, 'close');
    slow.socket.resume();
    await slowClosed;
    const stats = await info(pub);
    expect(stats).toMatchObject({ slowDisconnected: 1, subscribers: 1, subscriptions: 1 });
    expect(srv.logs.some((l) => /slow subscriber disconnected/.test(l.msg))).toBe(true);
  });

  it('1000 subscribers that connect and vanish leave no trace', async () => {
    const { port } = await start();
    const watcher = await Client.open(port);
    await watcher.result({ action: 'SUBSCRIBE', channels: ['news^>'] });
    const before = await info(watcher);
    for (let batch = 0; batch < 10; batch++) {
      const clients = await Promise.all(Array.from({ length: 100 }, () => Client.open(port)));
      await Promise.all(
        clients.map(async (c, i) => {
          await c.result({ action: 'SUBSCRIBE', channels: [`user^${batch}^${i}`, 'news^*', '*^eu'] });
          await c.result({ action: 'OBSERVE', keys: [`users^${i}^>`] });
        }),
      );
      expect((await info(watcher)).subscriptions).toBe(before.subscriptions + 300);
      for (const c of clients) c.socket.destroy();
      await waitFor(async () => (await info(watcher)).subscribers === before.subscribers, {
        message: 'the vanished subscribers to go',
      });
    }
    const after = await info(watcher);
    expect({ ...after, publishes: 0 }).toEqual({ ...before, publishes: 0 });
  });

  it('subscribers are exempt from the idle timeout', async () => {
    const { port } = await start({ idleTimeout: 0.3 });
    const idle = await Client.open(port);
    const sub = await Client.open(port);
    const obs = await Client.open(port);
    await sub.result({ action: 'SUBSCRIBE', channels: ['c'] });
    await obs.result({ action: 'OBSERVE', keys: ['k'] });
    await once(idle.socket, 'close');
    // Both waited at least as long as the one that was closed.
    expect(await sub.result({ action: 'PING' })).toBe('PONG');
    expect(await obs.result({ action: 'PING' })).toBe('PONG');
  });
});
