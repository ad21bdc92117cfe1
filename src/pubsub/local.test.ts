import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { NDJSON_PUSHES } from '../protocol/pushes.js';
import { MemoryStore } from '../store/memory.js';
import { Broker, SERVER_FROM } from './broker.js';
import { type ChangeEvent, type MessageEvent, PubSubError } from './index.js';

// `--expose-gc` for this file only: the flag must be set before the context that reads `gc` is made.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function setup() {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const broker = new Broker({ pushes: NDJSON_PUSHES, logger });
  return { broker, pubsub: broker.pubsub, logs };
}

const stores: MemoryStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

describe('in-process pub/sub', () => {
  it('calls handlers with the event, each with its own parsed copy', () => {
    const { pubsub } = setup();
    const seen: MessageEvent[] = [];
    pubsub.subscribe('news^*', (e) => {
      seen.push(e);
      (e.message as { n: number }).n = 99; // mutating its copy...
    });
    pubsub.subscribe('news^*', (e) => seen.push(e));
    pubsub.subscribe('news^>', (e) => seen.push(e));
    expect(pubsub.publish('news^eu', { n: 1 })).toBe(3);
    expect(seen.sort((a, b) => a.pattern.localeCompare(b.pattern))).toEqual([
      { channel: 'news^eu', pattern: 'news^*', message: { n: 99 }, from: SERVER_FROM },
      { channel: 'news^eu', pattern: 'news^*', message: { n: 1 }, from: SERVER_FROM }, // ...changes no other
      { channel: 'news^eu', pattern: 'news^>', message: { n: 1 }, from: SERVER_FROM },
    ]);
  });

  it('observes store changes', () => {
    const { broker, pubsub } = setup();
    const store = new MemoryStore();
    stores.push(store);
    store.onChange(broker.onStoreChange);
    const seen: ChangeEvent[] = [];
    pubsub.observe('users^>', (e) => seen.push(e));
    store.set('users^1', '{"name":"ada"}');
    store.del('users^1');
    expect(seen).toEqual([
      { key: 'users^1', op: 'set', value: { name: 'ada' } },
      { key: 'users^1', op: 'del' },
    ]);
  });

  it('logs a throwing handler and still delivers to the others', async () => {
    const { pubsub, logs } = setup();
    const got: string[] = [];
    pubsub.subscribe('c', () => got.push('first'));
    pubsub.subscribe('c', () => {
      throw new Error('boom');
    });
    pubsub.subscribe('c', () => Promise.reject(new Error('async boom')));
    pubsub.subscribe('c', () => got.push('last'));
    expect(pubsub.publish('c', 1)).toBe(4);
    expect(got).toEqual(['first', 'last']);
    await new Promise((resolve) => setImmediate(resolve));
    const faults = logs.filter((l) => l.msg === 'pubsub handler threw; delivery to others continues');
    expect(faults.map((l) => (l.err as { message: string }).message)).toEqual(['boom', 'async boom']);
    expect(faults[0]).toMatchObject({ level: 50, channel: 'c', pattern: 'c' });
  });

  it('lets a handler unsubscribe itself and others during delivery', () => {
    const { broker, pubsub } = setup();
    const got: string[] = [];
    const offs: (() => void)[] = [];
    offs[0] = pubsub.subscribe('c', () => {
      got.push('a');
      offs[0]!(); // itself
      offs[2]!(); // one not yet called: it gets nothing, even from this message
    });
    offs[1] = pubsub.subscribe('c', () => got.push('b'));
    offs[2] = pubsub.subscribe('c', () => got.push('c'));
    offs[3] = pubsub.subscribe('c', () => got.push('d'));
    expect(pubsub.publish('c', 1)).toBe(3);
    expect(pubsub.publish('c', 2)).toBe(2);
    expect(got).toEqual(['a', 'b', 'd', 'b', 'd']);
    offs[0]!(); // idempotent
    offs[1]!();
    offs[3]!();
    expect(broker.stats()).toMatchObject({ subscribers: 0, subscriptions: 0 });
    expect(broker.indexNodes).toEqual({ channels: 0, keys: 0 });
  });

  it('lets a handler subscribe and publish re-entrantly', () => {
    const { pubsub } = setup();
    const got: unknown[] = [];
    pubsub.subscribe('ping', (e) => {
      got.push(e.message);
      if ((e.message as number) < 3) pubsub.publish('ping', (e.message as number) + 1);
    });
    pubsub.subscribe('ping', () => {
      pubsub.subscribe('late', () => got.push('late'));
    });
    pubsub.publish('ping', 1);
    expect(got).toEqual([1, 2, 3]);
  });

  it('ends a subscription when its AbortSignal aborts, and subscribes nothing for an aborted one', () => {
    const { broker, pubsub } = setup();
    const controller = new AbortController();
    const got: unknown[] = [];
    pubsub.subscribe('c', (e) => got.push(e.message), { signal: controller.signal });
    pubsub.observe('k', () => got.push('change'), { signal: controller.signal });
    pubsub.publish('c', 1);
    controller.abort();
    pubsub.publish('c', 2);
    expect(got).toEqual([1]);
    expect(broker.stats()).toMatchObject({ subscribers: 0, subscriptions: 0, observations: 0 });

    const off = pubsub.subscribe('c', () => got.push('never'), { signal: AbortSignal.abort() });
    pubsub.publish('c', 3);
    off();
    expect(got).toEqual([1]);
    expect(broker.stats().subscriptions).toBe(0);
  });

  it('refuses misuse with clear errors', () => {
    const { pubsub } = setup();
    const refused = (() => {
      try {
        pubsub.subscribe('a^^b', () => {});
      } catch (err) {
        return err;
      }
    })();
    expect(refused).toBeInstanceOf(PubSubError);
    expect(refused).toMatchObject({
      code: 'BAD_CHANNEL',
      message:
        'pattern: empty segment at position 2 in "a^^b" (segments are joined by ^ and must not be empty)',
    });
    expect(() => pubsub.observe('a^>^b', () => {})).toThrow(/BAD_KEY|">" must be the last segment/);
    expect(() => pubsub.publish('$sys^shutdown', 1)).toThrow(/reserved for the server/);
    expect(() => pubsub.publish('c', undefined)).toThrow(/must be a JSON value/);
    expect(() => pubsub.subscribe('c', 'nope' as never)).toThrow(/handler: must be a function/);
    expect(() => pubsub.subscribe('c', () => {}, { owner: 5 as never })).toThrow(/owner: must be an object/);
    // With the pattern refused, nothing was subscribed even with an aborted signal.
    expect(() => pubsub.subscribe('', () => {}, { signal: AbortSignal.abort() })).toThrow(
      /must not be empty/,
    );
  });

  it('publishes system messages in-process', () => {
    const { pubsub } = setup();
    const got: MessageEvent[] = [];
    pubsub.subscribe('>', (e) => got.push(e));
    pubsub.subscribe('$sys^>', (e) => got.push(e));
    expect(pubsub.publishSystem('$sys^shutdown', { graceMs: 5000 })).toBe(1);
    expect(got).toEqual([
      { channel: '$sys^shutdown', pattern: '$sys^>', message: { graceMs: 5000 }, from: SERVER_FROM },
    ]);
  });
});

describe('in-process pub/sub: weak owners', () => {
  /** Collects garbage until `done()` or the deadline; finalizers run between turns of the loop. */
  async function collectUntil(done: () => boolean): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!done()) {
      if (Date.now() > deadline) throw new Error('owner was not collected within 10 s');
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  it('passes the owner to the handler and ends the subscription once the owner is collected', async () => {
    const { broker, pubsub } = setup();
    const calls: string[] = [];
    class View {
      constructor(readonly name: string) {}
      onMessage(e: MessageEvent) {
        calls.push(`${this.name}:${String(e.message)}`);
      }
    }
    const keep = new View('kept');
    // Created in a function so that no live variable of this test refers to the owner.
    (() => {
      const view = new View('gone');
      pubsub.subscribe('c', (e, owner) => owner.onMessage(e), { owner: view });
      pubsub.observe('k^>', () => {}, { owner: view });
    })();
    pubsub.subscribe('c', (e, owner) => owner.onMessage(e), { owner: keep });
    expect(broker.stats()).toMatchObject({ subscribers: 3, subscriptions: 2, observations: 1 });
    pubsub.publish('c', 1);
    expect(calls.sort()).toEqual(['gone:1', 'kept:1']);

    await collectUntil(() => broker.stats().subscribers === 1);
    expect(broker.stats()).toMatchObject({ subscribers: 1, subscriptions: 1, observations: 0 });
    calls.length = 0;
    pubsub.publish('c', 2);
    expect(calls).toEqual(['kept:2']);
    expect(keep.name).toBe('kept'); // keeps `keep` alive to here
  });

  it('an explicit unsubscribe also releases the owner and its finalization hook', async () => {
    const { broker, pubsub } = setup();
    let collected = false;
    const registry = new FinalizationRegistry(() => {
      collected = true;
    });
    let off: (() => void) | undefined;
    (() => {
      const owner = {};
      registry.register(owner, undefined);
      off = pubsub.subscribe('c', () => {}, { owner });
    })();
    off!();
    expect(broker.stats().subscriptions).toBe(0);
    // Nothing in the broker holds the owner: it is collected like any other object.
    await collectUntil(() => collected);
  });
});
