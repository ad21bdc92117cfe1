/**
 * The pipeline with a toy codec (one request per `;`-terminated word, answered in upper case;
 * `slow:` words are answered through a promise, `busy:` words spin 2 ms first): ordering with
 * async results, batching, backpressure, the in-flight cap, the per-turn budget, end and shutdown
 * hold whatever the protocol, which is the point of keeping the pipeline protocol-neutral.
 * protocol/ndjson.test.ts checks the JSON-lines codec; handler.test.ts the two composed.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { type Encoded, Pipeline, type RequestCodec } from './pipeline.js';
import type { Connection } from './types.js';

class WordCodec implements RequestCodec {
  readonly shutdownNotice = 'BYE;';
  blocked = false;
  /** Ask the pipeline to stop reading while more than this many bytes are buffered. */
  holdAbove = Number.POSITIVE_INFINITY;
  closedCalls = 0;
  drainedCalls = 0;
  /** Requests taken by `next()`. */
  taken = 0;
  pending: ((text: string) => void)[] = [];
  #buffer = '';

  push(chunk: Buffer): void {
    this.#buffer += chunk.toString();
  }
  get hasInput(): boolean {
    return this.#buffer.includes(';');
  }
  get holdInput(): boolean {
    return this.#buffer.length > this.holdAbove;
  }
  next(): Encoded | null {
    const end = this.#buffer.indexOf(';');
    if (end === -1) return null;
    const word = this.#buffer.slice(0, end);
    this.#buffer = this.#buffer.slice(end + 1);
    this.taken++;
    if (word.startsWith('slow:')) return new Promise((resolve) => this.pending.push(resolve));
    if (word.startsWith('fail:')) return Promise.reject(new Error(word));
    if (word.startsWith('busy:')) {
      const until = performance.now() + 2;
      while (performance.now() < until) {
        // An expensive request (a big fan-out, a large value).
      }
    }
    return `${word.toUpperCase()};`;
  }
  finish(): Encoded | null {
    const rest = this.#buffer;
    this.#buffer = '';
    return rest === '' ? null : `${rest.toUpperCase()}!`;
  }
  drained(): void {
    this.drainedCalls++;
  }
  closed(): void {
    this.closedCalls++;
  }
  fault(): string {
    return 'FAULT;';
  }
}

/** A Connection that records what the pipeline does with it. */
class FakeConnection implements Connection {
  readonly id = 1;
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 1;
  readonly log = pino({ enabled: false });
  readonly pendingBytes = 0;
  writes: string[] = [];
  congested = false;
  /** Turn congested on once this many characters have been written. */
  congestAfter = Number.POSITIVE_INFINITY;
  inputPaused = false;
  ended = false;
  closed = false;
  idleExempt = false;
  #written = 0;

  write(data: string | Uint8Array): void {
    const text = typeof data === 'string' ? data : Buffer.from(data).toString();
    this.writes.push(text);
    this.#written += text.length;
    if (this.#written >= this.congestAfter) this.congested = true;
  }
  notifyWhenFlushed(): void {}
  pauseInput(): void {
    this.inputPaused = true;
  }
  resumeInput(): void {
    this.inputPaused = false;
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.closed = true;
  }
  /** Every answer so far. */
  words(): string[] {
    return this.writes
      .join('')
      .split(';')
      .filter((w) => w !== '');
  }
}

/** No time budget: what one chunk does, synchronously, whatever the machine's speed. */
const UNLIMITED = { turnBudgetMs: Number.POSITIVE_INFINITY };
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

function setup(limits = UNLIMITED) {
  const conn = new FakeConnection();
  const codec = new WordCodec();
  const pipeline = new Pipeline(conn, codec, limits);
  const send = (text: string) => pipeline.data(Buffer.from(text));
  return { conn, codec, pipeline, send };
}

describe('Pipeline', () => {
  it('answers a chunk in one write, in request order even when an earlier answer is a promise', async () => {
    const { conn, codec, send } = setup();
    send('a;b;');
    expect(conn.writes).toEqual(['A;B;']);
    send('slow:x;c;slow:y;d;');
    // c and d are ready but wait behind the slow answers.
    expect(conn.writes).toEqual(['A;B;']);
    // The later promise settles first: nothing may overtake the earlier one.
    codec.pending[1]!('Y;');
    await nextTurn();
    expect(conn.writes.join('')).toBe('A;B;');
    codec.pending[0]!('X;');
    await nextTurn();
    expect(conn.writes.join('')).toBe('A;B;X;C;Y;D;');
  });

  it('answers a rejected promise with the codec fault, in its place', async () => {
    const { conn, send } = setup();
    send('a;fail:x;b;');
    await nextTurn();
    expect(conn.words()).toEqual(['A', 'FAULT', 'B']);
  });

  it('stops taking requests while congested and resumes on drain', () => {
    const { conn, codec, pipeline, send } = setup();
    conn.congested = true;
    send('a;b;');
    expect(codec.taken).toBe(0);
    conn.congested = false;
    pipeline.drain();
    expect(conn.words()).toEqual(['A', 'B']);
    expect(codec.drainedCalls).toBe(1);
  });

  it('cuts a large batch early and leaves the rest unread until drain', () => {
    const { conn, pipeline, send } = setup();
    conn.congestAfter = 1;
    const big = 'x'.repeat(20_000);
    send(Array.from({ length: 10 }, (_, i) => `${big}${i};`).join(''));
    const first = conn.words().length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(10);
    while (conn.words().length < 10) {
      const before = conn.words().length;
      conn.congested = false;
      pipeline.drain();
      expect(conn.words().length).toBeGreaterThan(before);
    }
    expect(conn.words().map((w) => w.slice(20_000))).toEqual([
      '0',
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
      '8',
      '9',
    ]);
  });

  it('takes no more requests while 1024 answers wait on promises, and goes on when one settles', async () => {
    const { conn, codec, send } = setup();
    send(`${'slow:x;'.repeat(1100)}a;`);
    expect(codec.taken).toBe(1024);
    codec.pending[0]!('X;');
    await nextTurn();
    // One slot freed, one more request taken (still behind the 1023 unsettled ones).
    expect(codec.taken).toBe(1025);
    for (const resolve of codec.pending.slice(1)) resolve('X;');
    await nextTurn();
    for (const resolve of codec.pending.slice(1025)) resolve('X;');
    await nextTurn();
    expect(codec.taken).toBe(1101);
    expect(conn.words()).toEqual([...Array.from({ length: 1100 }, () => 'X'), 'A']);
  });

  it('spends at most its time budget per turn, pausing input, and finishes on later turns in order', async () => {
    const { conn, send } = setup({ turnBudgetMs: 5 });
    send(Array.from({ length: 12 }, (_, i) => `busy:${i};`).join(''));
    const firstTurn = conn.words().length;
    // 12 x 2 ms does not fit a 5 ms turn: some were answered, reading stopped, the rest waits.
    expect(firstTurn).toBeGreaterThan(0);
    expect(firstTurn).toBeLessThan(12);
    expect(conn.inputPaused).toBe(true);
    // What was already on its way when reading stopped waits its turn behind the rest.
    send('late;');
    expect(conn.words()).toHaveLength(firstTurn);
    while (conn.words().length < 13) await nextTurn();
    expect(conn.words()).toEqual([...Array.from({ length: 12 }, (_, i) => `BUSY:${i}`), 'LATE']);
    expect(conn.inputPaused).toBe(false);
  });

  it('a connection closed while its work waits for the next turn does nothing more', async () => {
    const { conn, codec, pipeline, send } = setup({ turnBudgetMs: 5 });
    send(Array.from({ length: 12 }, (_, i) => `busy:${i};`).join(''));
    const written = conn.writes.length;
    const taken = codec.taken;
    pipeline.close();
    await nextTurn();
    await nextTurn();
    expect(conn.writes).toHaveLength(written);
    expect(codec.taken).toBe(taken);
    expect(codec.closedCalls).toBe(1);
  });

  it('pauses reading while the codec holds input, and resumes once it has caught up', () => {
    const { conn, codec, pipeline, send } = setup();
    codec.holdAbove = 4;
    codec.blocked = true;
    send('abcdef;');
    expect(conn.inputPaused).toBe(true);
    codec.blocked = false;
    pipeline.drain();
    expect(conn.words()).toEqual(['ABCDEF']);
    expect(conn.inputPaused).toBe(false);
  });

  it('runs nothing while the codec is blocked, and continues once it clears', () => {
    const { conn, codec, pipeline, send } = setup();
    codec.blocked = true;
    send('a;');
    expect(conn.writes).toEqual([]);
    codec.blocked = false;
    pipeline.drain();
    expect(conn.writes).toEqual(['A;']);
  });

  it('runs a last unterminated request at end of input, after earlier promises, then ends', async () => {
    const { conn, codec, pipeline, send } = setup({ turnBudgetMs: 5 });
    send('slow:x;a;tail');
    pipeline.end();
    expect(conn.ended).toBe(false);
    codec.pending[0]!('X;');
    await nextTurn();
    expect(conn.writes.join('')).toBe('X;A;TAIL!');
    expect(conn.ended).toBe(true);
  });

  it('on shutdown answers what was read, writes the codec notice last and runs nothing after', async () => {
    const { conn, codec, pipeline, send } = setup({ turnBudgetMs: 5 });
    send('slow:x;');
    let done = false;
    const shut = pipeline.shutdown().then(() => {
      done = true;
    });
    await nextTurn();
    expect(done).toBe(false);
    send('late;');
    codec.pending[0]!('X;');
    await shut;
    expect(conn.writes.join('')).toBe('X;BYE;');
    expect(codec.taken).toBe(1);
    pipeline.close();
    expect(codec.closedCalls).toBe(1);
  });

  it('shutdown resolves at once when nothing is pending', async () => {
    const { conn, pipeline } = setup();
    await pipeline.shutdown();
    expect(conn.writes).toEqual(['BYE;']);
  });

  it('writes nothing after close, even when a promise settles later', async () => {
    const { conn, codec, pipeline, send } = setup();
    send('slow:x;');
    pipeline.close();
    codec.pending[0]!('X;');
    await nextTurn();
    expect(conn.writes).toEqual([]);
  });
});
