/**
 * The composed JSON protocol handler (pipeline + NDJSON codec + dispatcher + auth) over a fake
 * connection and store: what crosses the seams. Pipeline behaviour on its own is in
 * transport/pipeline.test.ts, the codec's in protocol/ndjson.test.ts.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createProtocolHandler } from './handler.js';
import type { JsonText, MaybePromise, Store } from './store/store.js';
import type { Connection, ConnectionHandler } from './transport/types.js';

/** A Connection that records what the handler does with it. */
class FakeConnection implements Connection {
  readonly id = 1;
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 5000;
  readonly log = pino({ enabled: false });
  writes: string[] = [];
  pendingBytes = 0;
  congested = false;
  ended = false;
  closed = false;
  idleExempt = false;

  write(data: string | Uint8Array): void {
    const text = typeof data === 'string' ? data : Buffer.from(data).toString();
    this.writes.push(text);
  }
  notifyWhenFlushed(): void {}
  pauseInput(): void {}
  resumeInput(): void {}
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.closed = true;
  }
  /** Every response line so far, parsed. */
  responses(): Record<string, unknown>[] {
    return this.writes
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l));
  }
}

/** A map-backed store; in manual mode every answer waits until `release()` resolves it. */
class FakeStore {
  readonly data = new Map<string, JsonText>();
  manual = false;
  readonly waiting: { resolve: () => void; key: string }[] = [];

  /** Applies the operation at call time (as an engine keeps call order); only the answer waits. */
  private answer<T>(key: string, compute: () => T): MaybePromise<T> {
    const result = compute();
    if (!this.manual) return result;
    return new Promise<T>((resolve) => this.waiting.push({ key, resolve: () => resolve(result) }));
  }
  get(key: string) {
    return this.answer(key, () => this.data.get(key));
  }
  set(key: string, value: JsonText) {
    return this.answer(key, () => {
      this.data.set(key, value);
      return true;
    });
  }
  /** Resolve the waiting calls in the given order (indexes into `waiting`). */
  release(order: number[]): void {
    const calls = [...this.waiting];
    this.waiting.length = 0;
    for (const i of order) calls[i]!.resolve();
  }
  stats() {
    return this.answer('', () => ({ keys: this.data.size, namespaces: 0, keysWithTtl: 0, expired: 0 }));
  }
}

function setup(options: { maxLineBytes?: number; turnBudgetMs?: number } = {}) {
  const store = new FakeStore();
  // What one chunk does, synchronously, whatever the machine's speed: no time budget unless asked.
  const factory = createProtocolHandler({
    store: store as unknown as Store,
    turnBudgetMs: Number.POSITIVE_INFINITY,
    ...options,
  });
  const conn = new FakeConnection();
  const handler: ConnectionHandler = factory(conn);
  const send = (...lines: string[]) => handler.data(Buffer.from(`${lines.join('\n')}\n`));
  return { store, conn, handler, send, factory };
}

const flushMicrotasks = () => new Promise((resolve) => setImmediate(resolve));

describe('createProtocolHandler', () => {
  it('answers a pipelined chunk in order with one write, synchronously', () => {
    const { conn, send } = setup();
    send(
      '{"action":"SET","key":"a","value":1,"id":1}',
      'garbage',
      '{"action":"GET","key":"a","id":"two"}',
      '{"action":"nope","id":3}',
      '{"action":"PING"}',
    );
    expect(conn.writes).toHaveLength(1);
    expect(conn.responses()).toEqual([
      { id: 1, ok: true, result: true },
      { ok: false, error: { code: 'BAD_JSON', message: expect.any(String) } },
      { id: 'two', ok: true, result: 1 },
      { id: 3, ok: false, error: { code: 'UNKNOWN_ACTION', message: expect.any(String) } },
      { ok: true, result: 'PONG' },
    ]);
  });

  it('keeps request order when an asynchronous store answers out of order', async () => {
    const { conn, send, store } = setup();
    store.manual = true;
    send(
      '{"action":"SET","key":"a","value":"A","id":1}',
      '{"action":"PING","id":2}',
      '{"action":"SET","key":"b","value":"B","id":3}',
      'not json',
      '{"action":"GET","key":"a","id":5}',
    );
    expect(conn.writes).toEqual([]);
    // The last store call finishes first, the first one last.
    store.release([2, 1, 0]);
    await flushMicrotasks();
    expect(conn.responses().map((r) => r.id ?? r.error)).toEqual([1, 2, 3, expect.anything(), 5]);
    expect(conn.responses()[4]).toEqual({ id: 5, ok: true, result: 'A' });
  });

  it('INFO waits for an asynchronous store’s counts, in request order', async () => {
    const { conn, send, store } = setup();
    store.manual = true;
    send(
      '{"action":"SET","key":"a","value":1,"id":1}',
      '{"action":"INFO","id":2}',
      '{"action":"PING","id":3}',
    );
    expect(conn.writes).toEqual([]);
    store.release([1, 0]);
    await flushMicrotasks();
    expect(conn.responses().map((r) => r.id)).toEqual([1, 2, 3]);
    expect(conn.responses()[1]).toMatchObject({ id: 2, ok: true, result: { keys: 1 } });
  });

  it('on end: answers what was read (including an unterminated last line), then ends', async () => {
    const { conn, handler, store } = setup();
    store.manual = true;
    handler.data(Buffer.from('{"action":"SET","key":"a","value":1,"id":1}\n{"action":"PING","id":2}'));
    handler.end!();
    expect(conn.ended).toBe(false);
    store.release([0]);
    await flushMicrotasks();
    expect(conn.responses().map((r) => r.id)).toEqual([1, 2]);
    expect(conn.ended).toBe(true);
  });

  it('shutdown: finishes requests already read, runs nothing later, and ends with a shutdown push', async () => {
    const { conn, handler, store, send } = setup();
    store.manual = true;
    send('{"action":"SET","key":"a","value":1,"id":1}');
    let done = false;
    const shut = Promise.resolve(handler.shutdown!()).then(() => {
      done = true;
    });
    await flushMicrotasks();
    expect(done).toBe(false);
    send('{"action":"SET","key":"b","value":2,"id":2}', '{"action":"PING","id":3}');
    store.release([0]);
    await shut;
    // The push comes after the answer still pending; the requests sent after shutdown began never ran.
    const lines = conn.responses();
    expect(lines).toEqual([
      { id: 1, ok: true, result: true },
      { event: 'shutdown', message: expect.any(String) },
    ]);
    expect([...store.data.keys()]).toEqual(['a']);
  });

  it('LINE_TOO_LONG keeps the connection usable', () => {
    const { conn, handler } = setup({ maxLineBytes: 100 });
    handler.data(Buffer.from(`{"action":"PING","id":1}\n{"action":"ECHO","value":"${'y'.repeat(50)}`));
    handler.data(Buffer.from(`${'y'.repeat(200)}"}\n{"action":"PING","id":2}\n`));
    expect(conn.responses()).toEqual([
      { id: 1, ok: true, result: 'PONG' },
      { ok: false, error: { code: 'LINE_TOO_LONG', message: expect.stringContaining('100 bytes') } },
      { id: 2, ok: true, result: 'PONG' },
    ]);
  });

  it('counts every error in the stats INFO reports', () => {
    const { conn, send, factory } = setup();
    send(...Array.from({ length: 100 }, () => 'junk'));
    expect(conn.responses()).toHaveLength(100);
    expect(factory.stats.errors.BAD_JSON).toBe(100);
  });
});
