/**
 * The pipeline with a toy codec (one request per `;`-terminated word, answered in upper case,
 * `slow:` words answered through a promise): ordering, batching and shutdown hold whatever the
 * protocol, which is the point of keeping the pipeline protocol-neutral.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { type Encoded, Pipeline, type RequestCodec } from './pipeline.js';
import type { Connection } from './types.js';

class WordCodec implements RequestCodec {
  readonly shutdownNotice = 'BYE;';
  blocked = false;
  holdInput = false;
  closedCalls = 0;
  pending: ((text: string) => void)[] = [];
  #buffer = '';

  push(chunk: Buffer): void {
    this.#buffer += chunk.toString();
  }
  get hasInput(): boolean {
    return this.#buffer.includes(';');
  }
  next(): Encoded | null {
    const end = this.#buffer.indexOf(';');
    if (end === -1) return null;
    const word = this.#buffer.slice(0, end);
    this.#buffer = this.#buffer.slice(end + 1);
    if (word.startsWith('slow:')) return new Promise((resolve) => this.pending.push(resolve));
    return `${word.toUpperCase()};`;
  }
  finish(): Encoded | null {
    const rest = this.#buffer;
    this.#buffer = '';
    return rest === '' ? null : `${rest.toUpperCase()}!`;
  }
  drained(): void {}
  closed(): void {
    this.closedCalls++;
  }
  fault(): string {
    return 'FAULT;';
  }
}

type FakeConn = Connection & { writes: string[]; ended: boolean };

function fakeConn(): FakeConn {
  const conn = {
    id: 1,
    remoteAddress: '127.0.0.1',
    remotePort: 1,
    log: pino({ enabled: false }),
    congested: false,
    closed: false,
    idleExempt: false,
    writes: [] as string[],
    ended: false,
    write(text: string) {
      conn.writes.push(text);
      return true;
    },
    end() {
      conn.ended = true;
    },
    destroy() {},
    pauseInput() {},
    resumeInput() {},
  };
  return conn as unknown as FakeConn;
}

describe('Pipeline', () => {
  it('answers a chunk in one write, in request order even when an earlier answer is a promise', async () => {
    const conn = fakeConn();
    const codec = new WordCodec();
    const pipeline = new Pipeline(conn, codec, { turnBudgetMs: Number.POSITIVE_INFINITY });
    pipeline.data(Buffer.from('a;b;'));
    expect(conn.writes).toEqual(['A;B;']);
    pipeline.data(Buffer.from('slow:x;c;d;'));
    // c and d are ready but wait behind the slow answer.
    expect(conn.writes).toEqual(['A;B;']);
    codec.pending[0]!('X;');
    await Promise.resolve();
    await Promise.resolve();
    expect(conn.writes.join('')).toBe('A;B;X;C;D;');
  });

  it('runs a last unterminated request at end of input, then ends', () => {
    const conn = fakeConn();
    const pipeline = new Pipeline(conn, new WordCodec(), { turnBudgetMs: 5 });
    pipeline.data(Buffer.from('a;tail'));
    pipeline.end();
    expect(conn.writes.join('')).toBe('A;TAIL!');
    expect(conn.ended).toBe(true);
  });

  it('on shutdown answers what was read, writes the codec notice last and runs nothing after', async () => {
    const conn = fakeConn();
    const codec = new WordCodec();
    const pipeline = new Pipeline(conn, codec, { turnBudgetMs: 5 });
    pipeline.data(Buffer.from('slow:x;'));
    const done = pipeline.shutdown();
    pipeline.data(Buffer.from('late;'));
    codec.pending[0]!('X;');
    await done;
    expect(conn.writes.join('')).toBe('X;BYE;');
    pipeline.close();
    expect(codec.closedCalls).toBe(1);
  });

  it('runs nothing while the codec is blocked, and continues once it clears', () => {
    const conn = fakeConn();
    const codec = new WordCodec();
    codec.blocked = true;
    const pipeline = new Pipeline(conn, codec, { turnBudgetMs: 5 });
    pipeline.data(Buffer.from('a;'));
    expect(conn.writes).toEqual([]);
    codec.blocked = false;
    pipeline.drain();
    expect(conn.writes).toEqual(['A;']);
  });
});
