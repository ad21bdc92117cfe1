import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { NDJSON_PUSHES } from '../protocol/pushes.js';
import { type BrokerLimits, resolveLimits } from './limits.js';
import { channelRules, type Pattern, parsePattern } from './pattern.js';
import { type OutputCounters, type PushSink, RemoteSubscriber } from './remote.js';
import { Change, Message, Subscription } from './subscriber.js';

/**
 * A connection as the transport behaves (src/transport/types.ts): writes stay pending until the
 * test says the kernel took them (`flush()`); `notifyWhenFlushed()` brings one `drain()` (which
 * the session passes on to the subscriber) once everything written before the request is out,
 * and requests made before that share it.
 */
class FakeSink implements PushSink {
  readonly id = 7;
  readonly log = pino({ enabled: false });
  readonly lines: string[] = [];
  pendingBytes = 0;
  closed = false;
  destroyed = false;
  idleExempt = false;
  /** How many times the subscriber asked to hear about a flush. */
  flushRequests = 0;
  subscriber: RemoteSubscriber | undefined;
  #written = 0;
  #flushed = 0;
  /** The byte count flushes must reach before the requested drain() (undefined: none requested). */
  #notifyAt: number | undefined;

  write(data: string | Uint8Array): void {
    if (this.closed) return;
    const text = String(data);
    for (const line of text.split('\n')) if (line !== '') this.lines.push(line);
    const bytes = Buffer.byteLength(text);
    this.pendingBytes += bytes;
    this.#written += bytes;
  }

  notifyWhenFlushed(): void {
    this.flushRequests++;
    if (!this.closed) this.#notifyAt = this.#written;
  }

  destroy(): void {
    this.closed = true;
    this.destroyed = true;
  }

  /** The kernel took `bytes` (all that is pending by default). */
  flush(bytes = this.pendingBytes): void {
    this.pendingBytes -= bytes;
    this.#flushed += bytes;
    if (this.#notifyAt !== undefined && this.#flushed >= this.#notifyAt && !this.closed) {
      this.#notifyAt = undefined;
      this.subscriber?.drain();
    }
  }

  take(): Record<string, unknown>[] {
    const out = this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    this.lines.length = 0;
    return out;
  }
}

const pattern = parsePattern('c', channelRules()) as Pattern;

function setup(limits: Partial<BrokerLimits> = {}) {
  const sink = new FakeSink();
  const counters: OutputCounters = { dropped: 0, slowDisconnected: 0 };
  const sub = new RemoteSubscriber(sink, resolveLimits(limits), counters, undefined, NDJSON_PUSHES);
  sink.subscriber = sub;
  const subscription = new Subscription(sub, pattern, JSON.stringify(pattern.text));
  /** One publish of `json` on `c`: the outcome and the push line's length when it was written. */
  const publish = (json: string) =>
    sub.message(new Message('c', json, 'p', '"p"', NDJSON_PUSHES), subscription);
  return { sink, sub, counters, publish };
}

/** 79 bytes each with the newline: `{"event":"message","channel":"c","pattern":"c","message":N,"from":"p","seq":S}` */
const messages = (seqs: number[]) =>
  seqs.map((seq) => ({ event: 'message', channel: 'c', pattern: 'c', message: seq, from: 'p', seq }));

describe('RemoteSubscriber: drop policy and the gap line', () => {
  it('asks once per run of drops to hear when its output has flushed', () => {
    const { sink, publish, counters } = setup({ subscriberBuffer: 240 });
    for (let i = 1; i <= 10; i++) publish(`${i}`);
    // Three pushes fit under 240 bytes; seven dropped, one request.
    expect(sink.take()).toEqual(messages([1, 2, 3]));
    expect(counters.dropped).toBe(7);
    expect(sink.flushRequests).toBe(1);
  });

  it('sends the gap as soon as the output flushes, with nothing published after the drops', () => {
    const { sink, sub, publish } = setup({ subscriberBuffer: 240 });
    for (let i = 1; i <= 10; i++) publish(`${i}`);
    sink.take();
    sink.flush(100); // partly out: no notification yet
    expect(sink.lines).toEqual([]);
    sink.flush();
    expect(sink.take()).toEqual([{ event: 'gap', dropped: 7 }]);
    expect(sub.dropped).toBe(0);
    // The next push's seq shows the same hole.
    sink.flush();
    publish('11');
    expect(sink.take()).toEqual(messages([11]));
  });

  it('sends the gap before the next push that fits when that comes before the flush', () => {
    const { sink, sub, publish } = setup({ subscriberBuffer: 240 });
    for (let i = 1; i <= 10; i++) publish(`${i}`);
    sink.take();
    // The kernel takes two pushes; no notification yet (one is still pending), but one more fits.
    sink.flush(2 * 79);
    publish('11');
    expect(sink.take()).toEqual([{ event: 'gap', dropped: 7 }, ...messages([11])]);
    // The flush that follows has nothing left to report.
    sink.flush();
    expect(sink.lines).toEqual([]);
    expect(sub.dropped).toBe(0);
  });

  it('asks again when output flushed but responses written since keep it over the bound', () => {
    const { sink, publish } = setup({ subscriberBuffer: 240 });
    for (let i = 1; i <= 5; i++) publish(`${i}`);
    expect(sink.take()).toEqual(messages([1, 2, 3]));
    // A response (which the bound does not cover) is written after the drops.
    sink.write(`{"ok":true,"result":"${'r'.repeat(300)}"}\n`);
    sink.take();
    sink.flush(3 * 79); // the pushes are out and drain() comes, but the response keeps it over
    expect(sink.lines).toEqual([]);
    expect(sink.flushRequests).toBe(2);
    sink.flush();
    expect(sink.take()).toEqual([{ event: 'gap', dropped: 2 }]);
  });

  it('counts dropped changes too, and a new run of drops after a gap asks again', () => {
    const { sink, publish, sub } = setup({ subscriberBuffer: 240 });
    const change = new Change('k', 'set', '1', NDJSON_PUSHES);
    for (let i = 1; i <= 4; i++) publish(`${i}`);
    expect(sub.change(change)).toBe(1); // DROPPED
    sink.flush();
    expect(sink.take().at(-1)).toEqual({ event: 'gap', dropped: 2 });
    sink.flush(); // the gap line too
    for (let i = 1; i <= 5; i++) publish(`${i}`);
    expect(sink.flushRequests).toBe(2);
    sink.flush();
    expect(sink.take().at(-1)).toEqual({ event: 'gap', dropped: 2 });
    expect(sub.seq).toBe(10);
  });

  it('writes nothing once the connection closed', () => {
    const { sink, sub, publish } = setup({ subscriberBuffer: 240 });
    for (let i = 1; i <= 5; i++) publish(`${i}`);
    sink.take();
    sink.closed = true;
    sink.pendingBytes = 0;
    sub.drain();
    expect(sink.lines).toEqual([]);
  });

  it('disconnect policy: destroys the connection and asks for no flush', () => {
    const { sink, publish, counters } = setup({ subscriberBuffer: 240, slowSubscriber: 'disconnect' });
    for (let i = 1; i <= 5; i++) publish(`${i}`);
    expect(sink.destroyed).toBe(true);
    expect(counters.slowDisconnected).toBe(1);
    expect(sink.flushRequests).toBe(0);
  });
});
