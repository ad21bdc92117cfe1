import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { NDJSON_PUSHES } from '../protocol/pushes.js';
import { Broker } from '../pubsub/broker.js';
import { Fail } from '../result.js';
import type { Connection } from '../transport/types.js';
import { pubsubHandlers } from './pubsub.js';
import type { CommandContext } from './table.js';

function fakeConn(id: number): Connection & { lines: string[] } {
  const lines: string[] = [];
  return {
    id,
    remoteAddress: '127.0.0.1',
    remotePort: 1,
    log: pino({ enabled: false }),
    lines,
    write: (data: string | Uint8Array) => void lines.push(String(data)),
    pendingBytes: 0,
    congested: false,
    notifyWhenFlushed() {},
    pauseInput() {},
    resumeInput() {},
    end() {},
    destroy() {},
    idleExempt: false,
    closed: false,
  };
}

/** The auth hooks pub/sub uses (src/auth/connection.ts), with rules a test sets. */
class FakeAuth extends EventEmitter {
  userName: string | null = null;
  required = false;
  subscribable = (_pattern: string) => true;
  publishable = (_channel: string) => true;
  canSubscribe(pattern: string) {
    return this.subscribable(pattern);
  }
  canObserve(pattern: string) {
    return this.subscribable(pattern);
  }
  canPublish(channel: string) {
    return !channel.startsWith('$') && this.publishable(channel);
  }
  deny(action: string, what: string) {
    return new Fail('NOPERM', `user ${JSON.stringify(this.userName)} may not ${action} ${what}`);
  }
}

function context(
  conn: Connection | undefined,
  broker: Broker | undefined,
  auth = new FakeAuth(),
): CommandContext {
  return { conn, broker, auth, log: pino({ enabled: false }) } as unknown as CommandContext;
}

describe('pub/sub command handlers', () => {
  it('run each action against the connection’s subscriber', () => {
    const broker = new Broker({ pushes: NDJSON_PUSHES });
    const sub = fakeConn(1);
    const pub = fakeConn(2);
    const s = context(sub, broker);
    const p = context(pub, broker);
    expect(pubsubHandlers.SUBSCRIBE({ action: 'SUBSCRIBE', channels: ['a^*', 'b'] }, s)).toBe(2);
    expect(pubsubHandlers.OBSERVE({ action: 'OBSERVE', keys: ['k^>'] }, s)).toBe(1);
    expect(pubsubHandlers.PUBLISH({ action: 'PUBLISH', channel: 'a^1', message: { x: [1] } }, p)).toBe(1);
    expect(sub.lines).toEqual([
      '{"event":"message","channel":"a^1","pattern":"a^*","message":{"x":[1]},"from":2,"seq":1}\n',
    ]);
    broker.onStoreChange('set', 'k^1', '7');
    expect(sub.lines[1]).toBe('{"event":"change","key":"k^1","op":"set","value":7,"seq":2}\n');
    expect(pubsubHandlers.UNSUBSCRIBE({ action: 'UNSUBSCRIBE', channels: ['b'] }, s)).toBe(1);
    expect(pubsubHandlers.UNSUBSCRIBE({ action: 'UNSUBSCRIBE' }, s)).toBe(0);
    expect(pubsubHandlers.UNOBSERVE({ action: 'UNOBSERVE' }, s)).toBe(0);
    expect(broker.stats()).toMatchObject({ subscribers: 0, publishes: 1 });
  });

  it('turn refusals into failures with the catalogue code and the broker’s message', () => {
    const broker = new Broker({ pushes: NDJSON_PUSHES });
    const p = context(fakeConn(3), broker);
    const refused = pubsubHandlers.PUBLISH({ action: 'PUBLISH', channel: '$sys^shutdown', message: 1 }, p);
    expect(refused).toBeInstanceOf(Fail);
    expect(refused).toMatchObject({
      code: 'NOPERM',
      message: expect.stringMatching(/reserved for the server/),
    });
    expect(pubsubHandlers.SUBSCRIBE({ action: 'SUBSCRIBE', channels: ['a^>^b'] }, p)).toMatchObject({
      code: 'BAD_CHANNEL',
      message: expect.stringMatching(/^channels\[0\]: ">" must be the last segment/),
    });
    expect(pubsubHandlers.OBSERVE({ action: 'OBSERVE', keys: ['ok', 'a^^b'] }, p)).toMatchObject({
      code: 'BAD_KEY',
      message: expect.stringMatching(/^keys\[1\]: empty segment/),
    });
  });

  it('say why when there is no broker or no connection', () => {
    const none = pubsubHandlers.SUBSCRIBE(
      { action: 'SUBSCRIBE', channels: ['a'] },
      context(fakeConn(4), undefined),
    );
    expect(none).toMatchObject({ code: 'INTERNAL', message: 'pub/sub is not enabled on this server' });
    const noConn = pubsubHandlers.PUBLISH(
      { action: 'PUBLISH', channel: 'a', message: 1 },
      context(undefined, new Broker({ pushes: NDJSON_PUSHES })) as CommandContext,
    );
    expect(noConn).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('apply the user’s permissions, stamp the user, and revoke what a change no longer allows', () => {
    const broker = new Broker({ pushes: NDJSON_PUSHES });
    const conn = fakeConn(5);
    const auth = new FakeAuth();
    auth.required = true;
    auth.userName = 'app';
    auth.subscribable = (p) => p.startsWith('news^') || p.startsWith('app^');
    auth.publishable = (c) => c.startsWith('news^');
    const ctx = context(conn, broker, auth);
    expect(
      pubsubHandlers.SUBSCRIBE({ action: 'SUBSCRIBE', channels: ['news^>', 'alerts^>'] }, ctx),
    ).toMatchObject({
      code: 'NOPERM',
      message: 'user "app" may not SUBSCRIBE channel pattern "alerts^>"',
    });
    expect(pubsubHandlers.SUBSCRIBE({ action: 'SUBSCRIBE', channels: ['news^>'] }, ctx)).toBe(1);
    expect(pubsubHandlers.OBSERVE({ action: 'OBSERVE', keys: ['app^>', 'other^x'] }, ctx)).toMatchObject({
      code: 'NOPERM',
      message: 'user "app" may not OBSERVE key pattern "other^x"',
    });
    expect(pubsubHandlers.OBSERVE({ action: 'OBSERVE', keys: ['app^>'] }, ctx)).toBe(1);
    expect(pubsubHandlers.PUBLISH({ action: 'PUBLISH', channel: 'alerts^x', message: 1 }, ctx)).toMatchObject(
      {
        code: 'NOPERM',
        message: 'user "app" may not PUBLISH channel "alerts^x"',
      },
    );
    expect(pubsubHandlers.PUBLISH({ action: 'PUBLISH', channel: 'news^x', message: 1 }, ctx)).toBe(1);
    expect(conn.lines.at(-1)).toMatch(/"from":"app","seq":1\}\n$/);
    expect(broker.stats().refused.NOPERM).toBe(3);

    // A reload takes `news^` away: the subscription ends with a push saying why; `app^>` stays.
    auth.subscribable = (p) => p.startsWith('app^');
    auth.emit('permissions-changed', { reason: 'reload', user: 'app' });
    expect(JSON.parse(conn.lines.at(-1)!)).toEqual({
      event: 'revoked',
      channels: ['news^>'],
      keys: [],
      reason: 'the server reloaded its configuration and the user may no longer hold these',
    });
    expect(broker.stats()).toMatchObject({ subscriptions: 0, observations: 1 });
    // AUTH as another user restamps the messages.
    auth.userName = 'ops';
    auth.subscribable = () => true;
    auth.emit('permissions-changed', { reason: 'authenticated', user: 'ops' });
    pubsubHandlers.SUBSCRIBE({ action: 'SUBSCRIBE', channels: ['news^x'] }, ctx);
    pubsubHandlers.PUBLISH({ action: 'PUBLISH', channel: 'news^x', message: 2 }, ctx);
    expect(conn.lines.at(-1)).toMatch(/"from":"ops","seq":2\}\n$/);
  });
});
