import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { NDJSON_PUSHES } from '../protocol/pushes.js';
import { MemoryStore } from '../store/memory.js';
import { Broker, SERVER_FROM } from './broker.js';
import { type BrokerLimits, PubSubRefusal } from './limits.js';
import type { Pattern } from './pattern.js';
import type { PushSink } from './remote.js';
import type { Relay, RelaySink } from './types.js';

/**
 * A connection whose pending output the test controls: with `reading` false, every write stays
 * pending (a peer that never reads); `flush()` is the kernel taking it all.
 */
class FakeConn implements PushSink {
  static next = 1;
  readonly id = FakeConn.next++;
  readonly lines: string[] = [];
  readonly logs: Record<string, unknown>[] = [];
  readonly log = pino({ level: 'debug' }, { write: (line: string) => void this.logs.push(JSON.parse(line)) });
  pendingBytes = 0;
  closed = false;
  destroyed = false;
  idleExempt = false;
  reading = true;
  /** Flush notifications asked for; tests play the transport by calling `connectionDrained`. */
  flushRequests = 0;

  write(data: string | Uint8Array): void {
    if (this.closed) return;
    const text = String(data);
    // A chunk may hold several lines (a gap line and a push go out separately, but be safe).
    for (const line of text.split('\n')) if (line !== '') this.lines.push(line);
    if (!this.reading) this.pendingBytes += Buffer.byteLength(text);
  }

  notifyWhenFlushed(): void {
    this.flushRequests++;
  }

  destroy(): void {
    this.closed = true;
    this.destroyed = true;
  }

  flush(): void {
    this.pendingBytes = 0;
  }

  pushes(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  take(): Record<string, unknown>[] {
    const out = this.pushes();
    this.lines.length = 0;
    return out;
  }
}

function setup(limits: Partial<BrokerLimits> = {}, now?: () => number) {
  const broker = new Broker({ pushes: NDJSON_PUSHES, limits, ...(now ? { now } : {}) });
  const conn = () => {
    const c = new FakeConn();
    return { c, r: broker.remote(c) };
  };
  return { broker, conn };
}

const stores: MemoryStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

describe('Broker: publish and subscribe', () => {
  it('delivers to matching subscribers with pattern, from and a per-subscriber seq', () => {
    const { broker, conn } = setup();
    const a = conn();
    const b = conn();
    const pub = conn();
    expect(broker.subscribe(a.r, ['news^*', 'news^eu'])).toBe(2);
    expect(broker.subscribe(b.r, ['^orders^>'])).toBe(1);

    expect(broker.publish('news^eu', '{"t":1}', pub.r)).toBe(2);
    expect(broker.publish('orders^eu^7', '[1,"x"]', pub.r)).toBe(1);
    expect(broker.publish('news', 'null', pub.r)).toBe(0);

    expect(a.c.lines).toEqual([
      `{"event":"message","channel":"news^eu","pattern":"news^eu","message":{"t":1},"from":${pub.c.id},"seq":1}`,
      `{"event":"message","channel":"news^eu","pattern":"news^*","message":{"t":1},"from":${pub.c.id},"seq":2}`,
    ]);
    expect(b.c.pushes()).toEqual([
      {
        event: 'message',
        channel: 'orders^eu^7',
        pattern: 'orders^>',
        message: [1, 'x'],
        from: pub.c.id,
        seq: 1,
      },
    ]);
    expect(pub.c.lines).toEqual([]);
    expect(broker.stats()).toMatchObject({
      publishes: 3,
      messagesDelivered: 3,
      subscribers: 2,
      subscriptions: 3,
    });
  });

  it('escapes channel and pattern names in pushes', () => {
    const { broker, conn } = setup();
    const a = conn();
    broker.subscribe(a.r, ['q"uo\\te^*']);
    broker.publish('q"uo\\te^é', '"hi"', a.r);
    expect(a.c.pushes()).toMatchObject([{ channel: 'q"uo\\te^é', pattern: 'q"uo\\te^*', message: 'hi' }]);
  });

  it('keeps publish order per channel, and a subscription held twice delivers once', () => {
    const { broker, conn } = setup();
    const a = conn();
    expect(broker.subscribe(a.r, ['c', 'c', '^c'])).toBe(1);
    for (let i = 0; i < 100; i++) broker.publish('c', `${i}`, a.r);
    expect(a.c.pushes().map((p) => [p.message, p.seq])).toEqual(
      Array.from({ length: 100 }, (_, i) => [i, i + 1]),
    );
  });

  it('validates every pattern before adding any (all or nothing)', () => {
    const { broker, conn } = setup();
    const a = conn();
    const refused = broker.subscribe(a.r, ['ok^*', 'bad^^x']);
    expect(refused).toEqual(
      new PubSubRefusal(
        'BAD_CHANNEL',
        'channels[1]: empty segment at position 2 in "bad^^x" (segments are joined by ^ and must not be empty)',
      ),
    );
    expect(a.r.channels.size).toBe(0);
    expect(a.c.idleExempt).toBe(false);
    expect(broker.stats().refused.BAD_CHANNEL).toBe(1);
  });

  it('unsubscribes some or all, and leaves the idle timeout to apply again', () => {
    const { broker, conn } = setup();
    const a = conn();
    broker.subscribe(a.r, ['a', 'b^*', 'c^>']);
    broker.observe(a.r, ['k']);
    expect(a.c.idleExempt).toBe(true);
    expect(broker.unsubscribe(a.r, ['b^*', 'never'])).toBe(2);
    expect(broker.publish('b^x', '1', a.r)).toBe(0);
    expect(broker.unsubscribe(a.r, ['a^^'])).toBeInstanceOf(PubSubRefusal);
    expect(broker.unsubscribe(a.r)).toBe(0);
    expect(a.c.idleExempt).toBe(true); // still observing
    expect(broker.unobserve(a.r)).toBe(0);
    expect(a.c.idleExempt).toBe(false);
    expect(broker.stats()).toMatchObject({ subscribers: 0, subscriptions: 0, observations: 0 });
  });
});

describe('Broker: reserved channels', () => {
  it('refuses a client publish under $ with NOPERM, logged as a warning', () => {
    const { broker, conn } = setup();
    const sub = conn();
    const evil = conn();
    broker.subscribe(sub.r, ['$sys^>']);
    for (const channel of ['$sys^shutdown', '^$sys^server^restart', '$SYS^shutdown', '$sys']) {
      const result = broker.publish(channel, '{}', evil.r);
      expect(result).toBeInstanceOf(PubSubRefusal);
      expect((result as PubSubRefusal).code).toBe('NOPERM');
    }
    expect(sub.c.lines).toEqual([]);
    expect(broker.stats().refused.NOPERM).toBe(4);
    expect(evil.c.logs[0]).toMatchObject({ level: 40, code: 'NOPERM', msg: 'pubsub refused' });
  });

  it('delivers system messages only to patterns that spell out $sys', () => {
    const { broker, conn } = setup();
    const all = conn();
    const sys = conn();
    broker.subscribe(all.r, ['>', '*^shutdown', '*^>']);
    broker.subscribe(sys.r, ['$sys^shutdown', '$sys^>']);
    expect(broker.publishSystem('$sys^shutdown', '{"in":5000}')).toBe(2);
    expect(all.c.lines).toEqual([]);
    expect(sys.c.pushes()).toMatchObject([
      { channel: '$sys^shutdown', pattern: '$sys^shutdown', message: { in: 5000 }, from: SERVER_FROM },
      { channel: '$sys^shutdown', pattern: '$sys^>', from: SERVER_FROM },
    ]);
    expect(() => broker.publishSystem('news', '1')).toThrow(/not under \$sys/);
    expect(() => broker.publishSystem('$system^x', '1')).toThrow(/not under \$sys/);
  });
});

describe('Broker: permissions', () => {
  it('asks the guard about new patterns and publishes, and revokes on recheck', () => {
    const { broker, conn } = setup();
    const a = conn();
    let allowed = (p: string) => p.startsWith('news^');
    const why = (p: string) => (allowed(p) ? undefined : `not ${p}`);
    a.r.guard = { publish: why, subscribe: why, observe: why };
    expect(broker.subscribe(a.r, ['news^>', 'news^eu'])).toBe(2);
    expect(broker.subscribe(a.r, ['news^>', 'x^>'])).toEqual(new PubSubRefusal('NOPERM', 'not x^>'));
    expect(broker.observe(a.r, ['news^k'])).toBe(1);
    expect(broker.publish('x^1', '1', a.r)).toEqual(new PubSubRefusal('NOPERM', 'not x^1'));
    // Reserved channels are refused before any guard is asked.
    allowed = () => true;
    expect((broker.publish('$sys^x', '1', a.r) as PubSubRefusal).message).toMatch(/reserved for the server/);
    expect(broker.stats().refused.NOPERM).toBe(3);

    expect(broker.recheck(a.r, 'nothing changed')).toBe(0);
    expect(a.c.lines).toEqual([]);
    allowed = (p) => p === 'news^eu';
    expect(broker.recheck(a.r, 'reloaded')).toBe(2);
    expect(a.c.pushes()).toEqual([
      { event: 'revoked', channels: ['news^>'], keys: ['news^k'], reason: 'reloaded' },
    ]);
    expect(broker.stats()).toMatchObject({ subscriptions: 1, observations: 0, subscribers: 1 });
    allowed = () => false;
    broker.recheck(a.r, 'gone');
    expect(broker.stats()).toMatchObject({ subscriptions: 0, subscribers: 0 });
    expect(a.c.idleExempt).toBe(false);
  });

  it('stamps messages with the identity a connection is given', () => {
    const { broker, conn } = setup();
    const a = conn();
    broker.subscribe(a.r, ['c']);
    a.r.identify('alice');
    broker.publish('c', '1', a.r);
    a.r.identify(null);
    broker.publish('c', '2', a.r);
    expect(a.c.pushes().map((p) => p.from)).toEqual(['alice', a.c.id]);
  });
});

describe('Broker: limits', () => {
  it('refuses oversized messages, counting bytes of UTF-8', () => {
    const { broker, conn } = setup({ maxMessageBytes: 10 });
    const a = conn();
    broker.subscribe(a.r, ['c']);
    expect(broker.publish('c', '"12345678"', a.r)).toBe(1);
    const refused = broker.publish('c', '"éééé"', a.r); // 6 characters, 10 bytes: fits
    expect(refused).toBe(1);
    const tooBig = broker.publish('c', '"ééééé"', a.r) as PubSubRefusal;
    expect(tooBig.code).toBe('MESSAGE_TOO_LARGE');
    expect(tooBig.message).toBe(
      'message: larger than 10 bytes as JSON (got 12); publish a reference to the data instead, or raise --max-message-bytes',
    );
    expect((broker.publish('c', '"123456789012"', a.r) as PubSubRefusal).message).toMatch(/got at least 14/);
  });

  it('refuses channels over the configured length and wildcard channels', () => {
    const { broker, conn } = setup({ maxChannelLength: 8 });
    const a = conn();
    expect((broker.publish('123456789', '1', a.r) as PubSubRefusal).message).toBe(
      'channel: longer than 8 characters (got 9)',
    );
    expect((broker.subscribe(a.r, ['12345^>>>']) as PubSubRefusal).code).toBe('BAD_CHANNEL');
    expect((broker.publish('a^*', '1', a.r) as PubSubRefusal).code).toBe('BAD_CHANNEL');
  });

  it('caps subscriptions plus observations per connection, counting only new patterns', () => {
    const { broker, conn } = setup({ maxSubscriptions: 3 });
    const a = conn();
    expect(broker.subscribe(a.r, ['a', 'b'])).toBe(2);
    expect(broker.subscribe(a.r, ['a', 'b'])).toBe(2);
    const refused = broker.observe(a.r, ['k', 'l']) as PubSubRefusal;
    expect(refused.code).toBe('TOO_MANY_SUBSCRIPTIONS');
    expect(refused.message).toMatch(
      /^keys: this connection would hold 4 .* limit of 3 .*--max-subscriptions/,
    );
    expect(broker.observe(a.r, ['k'])).toBe(1);
    // In-process subscribers are the server's own code: no per-connection cap.
    for (let i = 0; i < 5; i++) broker.pubsub.subscribe(`x^${i}`, () => {});
  });

  it('rate-limits publishes per connection with a token bucket; the connection lives', () => {
    let now = 0;
    const { broker, conn } = setup({ maxPublishRate: 5 }, () => now);
    const a = conn();
    const b = conn();
    const results = Array.from({ length: 8 }, () => broker.publish('c', '1', a.r));
    expect(results.slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    for (const r of results.slice(5)) expect((r as PubSubRefusal).code).toBe('RATE_LIMITED');
    expect(broker.publish('c', '1', b.r)).toBe(0); // another connection has its own bucket
    now += 200; // one token back
    expect(broker.publish('c', '1', a.r)).toBe(0);
    expect(broker.publish('c', '1', a.r)).toBeInstanceOf(PubSubRefusal);
    now += 10_000; // refills to the burst, never above
    expect(
      Array.from({ length: 6 }, () => broker.publish('c', '1', a.r)).filter((r) => r === 0),
    ).toHaveLength(5);
    expect(broker.stats().refused.RATE_LIMITED).toBe(5);
    expect(a.c.closed).toBe(false);
  });

  it('publishes without limit when the rate is 0', () => {
    const { broker, conn } = setup({ maxPublishRate: 0 });
    const a = conn();
    for (let i = 0; i < 1000; i++) expect(broker.publish('c', '1', a.r)).toBe(0);
  });

  it('rejects nonsensical limits at construction', () => {
    expect(() => new Broker({ pushes: NDJSON_PUSHES, limits: { subscriberBuffer: 0 } })).toThrow(
      /subscriberBuffer/,
    );
    expect(
      () => new Broker({ pushes: NDJSON_PUSHES, limits: { slowSubscriber: 'pause' as 'drop' } }),
    ).toThrow(/slowSubscriber/);
    expect(() => new Broker({ pushes: NDJSON_PUSHES, limits: { maxPublishRate: -1 } })).toThrow(
      /maxPublishRate/,
    );
  });
});

describe('Broker: slow subscribers', () => {
  it('drop policy: drops past the bound, counts, and sends a gap before the next push', () => {
    const { broker, conn } = setup({ subscriberBuffer: 300 });
    const slow = conn();
    const healthy = conn();
    const pub = conn();
    broker.subscribe(slow.r, ['c']);
    broker.subscribe(healthy.r, ['c']);
    slow.c.reading = false;

    const delivered: unknown[] = [];
    for (let i = 1; i <= 10; i++) delivered.push(broker.publish('c', `${i}`, pub.r));
    // 78-byte pushes: three fit under 300 bytes, then the slow one only drops.
    expect(slow.c.lines[0]).toHaveLength(77);
    expect(slow.c.pushes().map((p) => p.seq)).toEqual([1, 2, 3]);
    expect(slow.c.pendingBytes).toBeLessThanOrEqual(300);
    expect(delivered).toEqual([2, 2, 2, 1, 1, 1, 1, 1, 1, 1]);
    expect(healthy.c.pushes().map((p) => p.message)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(broker.stats()).toMatchObject({ dropped: 7, messagesDelivered: 13 });
    expect(slow.r.dropped).toBe(7);
    expect(slow.c.logs.filter((l) => /dropping pushes/.test(String(l.msg)))).toHaveLength(1);
    // One run of drops: the connection is asked once to say when its output has flushed.
    expect(slow.c.flushRequests).toBe(1);
    expect(healthy.c.flushRequests).toBe(0);

    // It catches up: the next push is preceded by the gap, and seq shows the hole too.
    slow.c.take();
    slow.c.flush();
    broker.publish('c', '11', pub.r);
    expect(slow.c.take()).toEqual([
      { event: 'gap', dropped: 7 },
      { event: 'message', channel: 'c', pattern: 'c', message: 11, from: pub.c.id, seq: 11 },
    ]);
    expect(slow.c.closed).toBe(false);
  });

  it('drop policy: drain sends the gap at once, and only when under the bound', () => {
    const { broker, conn } = setup({ subscriberBuffer: 100 });
    const slow = conn();
    broker.subscribe(slow.r, ['c']);
    slow.c.reading = false;
    // A message larger than the bound still goes to an idle connection; what follows is dropped.
    broker.publish('c', `"${'x'.repeat(200)}"`, slow.r);
    for (let i = 0; i < 4; i++) broker.publish('c', '1', slow.r);
    expect(slow.c.take().map((p) => p.seq)).toEqual([1]);
    broker.connectionDrained(slow.c); // still over: nothing
    expect(slow.c.lines).toEqual([]);
    slow.c.flush();
    broker.connectionDrained(slow.c);
    expect(slow.c.take()).toEqual([{ event: 'gap', dropped: 4 }]);
    broker.connectionDrained(slow.c); // once only
    expect(slow.c.lines).toEqual([]);
  });

  it('always writes to an idle connection, so a message larger than the bound still arrives', () => {
    const { broker, conn } = setup({ subscriberBuffer: 16 });
    const a = conn();
    broker.subscribe(a.r, ['c']);
    a.c.reading = false;
    expect(broker.publish('c', `"${'x'.repeat(100)}"`, a.r)).toBe(1);
    expect(broker.publish('c', '1', a.r)).toBe(0);
  });

  it('disconnect policy: closes the slow subscriber with a logged reason; others get everything', () => {
    const { broker, conn } = setup({ subscriberBuffer: 300, slowSubscriber: 'disconnect' });
    const slow = conn();
    const healthy = conn();
    broker.subscribe(slow.r, ['c', 'd']);
    broker.observe(slow.r, ['k']);
    broker.subscribe(healthy.r, ['c']);
    slow.c.reading = false;
    for (let i = 1; i <= 10; i++) broker.publish('c', `${i}`, healthy.r);
    expect(slow.c.destroyed).toBe(true);
    expect(slow.c.pushes()).toHaveLength(3);
    expect(healthy.c.pushes()).toHaveLength(10);
    expect(slow.c.logs).toContainEqual(
      expect.objectContaining({
        level: 40,
        subscriberBuffer: 300,
        msg: expect.stringMatching(/slow subscriber disconnected/),
      }),
    );
    // Its subscriptions went at once, observations too.
    expect(broker.stats()).toMatchObject({
      slowDisconnected: 1,
      subscriptions: 1,
      observations: 0,
      subscribers: 1,
    });
    expect(slow.r.channels.size + slow.r.keys.size).toBe(0);
  });

  it('skips and forgets a subscriber whose connection already closed', () => {
    const { broker, conn } = setup();
    const a = conn();
    broker.subscribe(a.r, ['c']);
    a.c.closed = true;
    expect(broker.publish('c', '1', a.r)).toBe(0);
    expect(broker.stats().subscriptions).toBe(0);
  });
});

describe('Broker: vanished subscribers', () => {
  it('returns the index exactly to its size after 1000 subscribers connect and vanish', () => {
    const { broker, conn } = setup();
    const resident = conn();
    broker.subscribe(resident.r, ['news^>']);
    broker.observe(resident.r, ['users^*']);
    const before = { nodes: broker.indexNodes, stats: broker.stats() };
    const conns = [];
    for (let i = 0; i < 1000; i++) {
      const s = conn();
      conns.push(s);
      broker.subscribe(s.r, [`user^${i}`, `user^${i}^>`, 'news^*', '*^eu', `$sys^${i % 10}`]);
      broker.observe(s.r, [`users^${i}`, `users^${i}^>`, '*^name']);
    }
    expect(broker.stats()).toMatchObject({ subscribers: 1001, subscriptions: 5001, observations: 3001 });
    expect(broker.publish('news^eu', '1', resident.r)).toBe(2001);
    for (const s of conns) broker.connectionClosed(s.c);
    expect({ nodes: broker.indexNodes, stats: broker.stats() }).toEqual({
      nodes: before.nodes,
      stats: { ...before.stats, publishes: 1, messagesDelivered: 2001 },
    });
    expect(broker.publish('news^eu', '2', resident.r)).toBe(1);
    broker.connectionClosed(conns[0]!.c); // idempotent
  });
});

describe('Broker: observing the store', () => {
  function withStore() {
    let now = 1000;
    const store = new MemoryStore({ now: () => now });
    stores.push(store);
    const { broker, conn } = setup();
    store.onChange(broker.onStoreChange);
    return { store, broker, conn, advance: (ms: number) => (now += ms) };
  }

  it('pushes every change kind with its value where there is one', () => {
    const { store, broker, conn, advance } = withStore();
    const o = conn();
    broker.observe(o.r, ['users^>']);
    store.set('users^1^name', '"ada"');
    store.incr('users^1^visits', 2);
    store.cas('users^1^name', '"ada"', '"grace"');
    store.del('users^1^name');
    store.set('users^2', '{"a":1}', { ttl: 10 });
    advance(10);
    store.get('users^2'); // lazy expiry reports it
    store.set('posts^1', '1'); // not observed
    expect(o.c.lines).toEqual([
      '{"event":"change","key":"users^1^name","op":"set","value":"ada","seq":1}',
      '{"event":"change","key":"users^1^visits","op":"incr","value":2,"seq":2}',
      '{"event":"change","key":"users^1^name","op":"cas","value":"grace","seq":3}',
      '{"event":"change","key":"users^1^name","op":"del","seq":4}',
      '{"event":"change","key":"users^2","op":"set","value":{"a":1},"seq":5}',
      '{"event":"change","key":"users^2","op":"expire","seq":6}',
    ]);
    expect(broker.stats().changesDelivered).toBe(6);
  });

  it('sends one drop event per concerned observer, keyed by the namespace', async () => {
    const { store, broker, conn } = withStore();
    const many = conn(); // several patterns concerned: still one event
    const exact = conn();
    const other = conn();
    const own = conn(); // the namespace's own path is not below it
    broker.observe(many.r, ['users^>', 'users^*', '*^1^name', '>']);
    broker.observe(exact.r, ['users^1^name']);
    broker.observe(other.r, ['posts^>']);
    broker.observe(own.r, ['users']);
    store.set('users^1^name', '"x"');
    many.c.take();
    exact.c.take();
    await store.drop('users');
    expect(many.c.pushes()).toEqual([{ event: 'change', key: 'users', op: 'drop', seq: 2 }]);
    expect(exact.c.pushes()).toEqual([{ event: 'change', key: 'users', op: 'drop', seq: 2 }]);
    expect(other.c.lines).toEqual([]);
    expect(own.c.lines).toEqual([]);
  });

  it('shares seq between messages and changes of one connection', () => {
    const { store, broker, conn } = withStore();
    const o = conn();
    broker.observe(o.r, ['k']);
    broker.subscribe(o.r, ['c']);
    store.set('k', '1');
    broker.publish('c', '2', o.r);
    store.del('k');
    expect(o.c.pushes().map((p) => [p.event, p.seq])).toEqual([
      ['change', 1],
      ['message', 2],
      ['change', 3],
    ]);
  });

  it('costs nothing and sends nothing while nobody observes', () => {
    const { store, broker, conn } = withStore();
    const s = conn();
    broker.subscribe(s.r, ['>']);
    store.set('a', '1');
    expect(s.c.lines).toEqual([]);
  });

  it('refuses malformed key patterns as BAD_KEY', () => {
    const { broker, conn } = setup();
    const o = conn();
    expect(broker.observe(o.r, ['users^>^x'])).toEqual(
      new PubSubRefusal(
        'BAD_KEY',
        'keys[0]: ">" must be the last segment (it matches every remaining segment), but "users^>^x" has it at segment 2',
      ),
    );
  });
});

/** A relay that records what the broker tells it (the Redis one is tested on a real cluster). */
class FakeRelay implements Relay {
  connected = true;
  sink: RelaySink | undefined;
  readonly held = new Map<string, number>();
  readonly sent: [string, string, string][] = [];
  attach(sink: RelaySink): void {
    this.sink = sink;
  }
  publish(channel: string, json: string, fromJson: string): void {
    this.sent.push([channel, json, fromJson]);
  }
  watch(pattern: Pattern): Promise<void> | undefined {
    this.held.set(pattern.text, (this.held.get(pattern.text) ?? 0) + 1);
    return undefined;
  }
  unwatch(pattern: Pattern): void {
    const n = this.held.get(pattern.text)! - 1;
    if (n === 0) this.held.delete(pattern.text);
    else this.held.set(pattern.text, n);
  }
  async close(): Promise<void> {}
}

describe('Broker: across nodes (a relay)', () => {
  function relayed() {
    const relay = new FakeRelay();
    const broker = new Broker({ pushes: NDJSON_PUSHES, relay });
    const conn = () => {
      const c = new FakeConn();
      return { c, r: broker.remote(c) };
    };
    return { relay, broker, conn };
  }

  it('tells the relay every subscription that other nodes can reach, and each end of one', () => {
    const { relay, broker, conn } = relayed();
    const a = conn();
    const b = conn();
    broker.subscribe(a.r, ['news^*', '$sys^>', '>']);
    broker.subscribe(b.r, ['news^*']);
    // `$sys^>` only matches this node's own system channels: never relayed. `>` may match others.
    expect(Object.fromEntries(relay.held)).toEqual({ 'news^*': 2, '>': 1 });
    broker.unsubscribe(a.r, ['news^*']);
    expect(Object.fromEntries(relay.held)).toEqual({ 'news^*': 1, '>': 1 });
    broker.connectionClosed(a.c);
    broker.connectionClosed(b.c);
    expect(relay.held.size).toBe(0);
    broker.observe(conn().r, ['users^>']);
    expect(relay.held.size).toBe(0);
  });

  it('relays accepted client publishes (never system ones) and refuses while the backend is away', () => {
    const { relay, broker, conn } = relayed();
    const pub = conn();
    expect(broker.publish('news^eu', '{"a":1}', pub.r)).toBe(0);
    expect(broker.publish('$sys^x', '1', pub.r)).toBeInstanceOf(PubSubRefusal);
    broker.publishSystem('$sys^server^x', '1');
    expect(relay.sent).toEqual([['news^eu', '{"a":1}', String(pub.c.id)]]);
    relay.connected = false;
    const refused = broker.publish('news^eu', '2', pub.r) as PubSubRefusal;
    expect(refused.code).toBe('UNAVAILABLE');
    expect(refused.message).toMatch(/cannot reach the Redis backend/);
    expect(relay.sent).toHaveLength(1);
  });

  it('delivers other nodes’ publishes with their from, and drops what this node would refuse', () => {
    const { relay, broker, conn } = relayed();
    const a = conn();
    broker.subscribe(a.r, ['>', '$sys^>']);
    const sink = relay.sink!;
    sink.deliverRelayed('news^eu', '{"a":1}', '"alice"');
    sink.deliverRelayed('$sys^shutdown', '1', '"$server"');
    sink.deliverRelayed('news^^eu', '1', '7');
    sink.deliverRelayed('news^eu', '{"a":\n1}', '7');
    sink.deliverRelayed('news^eu', '', '7');
    sink.deliverRelayed('news^eu', '1', 'not json');
    sink.deliverRelayed('news^eu', '1', '{"an":"object"}');
    sink.deliverRelayed('news^eu', '2', '7');
    expect(a.c.take().map((p) => [p.channel, p.message, p.from])).toEqual([
      ['news^eu', { a: 1 }, 'alice'],
      ['news^eu', 2, 7],
    ]);
    expect(broker.stats()).toMatchObject({ publishes: 0, relayed: 2 });
  });

  it('sends a backend gap to every subscriber that could have missed something, once each', () => {
    const { broker, conn } = relayed();
    const channels = conn();
    const keys = conn();
    const both = conn();
    const system = conn();
    const idle = conn();
    broker.subscribe(channels.r, ['news^*']);
    broker.observe(keys.r, ['users^>']);
    broker.subscribe(both.r, ['a^b']);
    broker.observe(both.r, ['c^d']);
    broker.subscribe(system.r, ['$sys^>']);
    broker.subscribe(idle.r, ['x']);
    broker.unsubscribe(idle.r);
    broker.backendLost();
    const gap = { event: 'gap', reason: 'backend' };
    expect([channels, keys, both, system, idle].map(({ c }) => c.take())).toEqual([
      [gap],
      [gap],
      [gap],
      [],
      [],
    ]);
  });
});
