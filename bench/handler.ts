/**
 * The whole request path above the socket, in process: bytes -> framer -> decode + validate ->
 * dispatch -> MemoryStore -> encode -> one write per chunk, through the real protocol handler and
 * a connection stub that only counts what it is given. No kernel, no load generator, no scheduler
 * in the measurement, so a change to the hot path shows up even on a busy machine.
 *
 *   npx tsx bench/handler.ts              # SET:GET 1:1 on 100k prefilled keys, chunks of 1 and 16
 *   npx tsx bench/handler.ts --cpu-prof   # (pass node flags through tsx: node --import tsx ...)
 *
 * Requests are the lines `caretkv bench` sends (`bench^d042^k0042137`, 32-byte values), so this
 * is the macro benchmark's workload minus the network.
 */
import { pino } from 'pino';
import { KeySpace } from '../src/cli/bench/workload.js';
import { createProtocolHandler } from '../src/handler.js';
import { MemoryStore } from '../src/store/memory.js';
import type { Connection, ConnectionHandler } from '../src/transport/types.js';
import { type MicroResult, micro, printMicro, textTable } from './lib/stats.js';

const KEYS = 100_000;
const VALUE = 'x'.repeat(32);

class CountingConnection implements Connection {
  readonly id = 1;
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 1;
  readonly log = pino({ level: 'silent' });
  idleExempt = false;
  readonly pendingBytes = 0;
  readonly congested = false;
  readonly closed = false;
  writes = 0;
  bytes = 0;
  write(data: string | Uint8Array): void {
    this.writes++;
    this.bytes += data.length;
  }
  notifyWhenFlushed(): void {}
  pauseInput(): void {}
  resumeInput(): void {}
  end(): void {}
  destroy(): void {}
}

const keys = new KeySpace(KEYS);
const setLine = (id: number): string =>
  `{"action":"SET","key":${JSON.stringify(keys.key(id))},"value":${JSON.stringify(VALUE)}}\n`;
const getLine = (id: number): string => `{"action":"GET","key":${JSON.stringify(keys.key(id))}}\n`;

/** Chunks of `perChunk` request lines, SET:GET 1:1 on random keys (deterministic). */
function chunks(count: number, perChunk: number, line: (i: number, r: number) => string): Buffer[] {
  let seed = 0x5eed;
  const random = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  const out: Buffer[] = [];
  for (let c = 0; c < count; c++) {
    let text = '';
    for (let i = 0; i < perChunk; i++) text += line(random() % KEYS, random());
    out.push(Buffer.from(text, 'latin1'));
  }
  return out;
}

const mixed = (id: number, r: number): string => (r & 1 ? setLine(id) : getLine(id));

function setup(): { handler: ConnectionHandler; conn: CountingConnection } {
  const store = new MemoryStore();
  const factory = createProtocolHandler({
    store,
    // The loop below is synchronous: nothing would run a continuation. The budget check still runs.
    turnBudgetMs: Number.POSITIVE_INFINITY,
  });
  const conn = new CountingConnection();
  const handler = factory(conn);
  // Prefill, so every GET hits.
  for (let i = 0; i < KEYS; i += 100) {
    let text = '';
    for (let j = i; j < i + 100; j++) text += setLine(j);
    handler.data(Buffer.from(text, 'latin1'));
  }
  return { handler, conn };
}

const { handler, conn } = setup();
const results: MicroResult[] = [];
const CHUNKS = 4096;
for (const perChunk of [1, 16]) {
  const input = chunks(CHUNKS, perChunk, mixed);
  const get = chunks(CHUNKS, perChunk, (id) => getLine(id));
  const set = chunks(CHUNKS, perChunk, (id) => setLine(id));
  const ops = Math.floor(400_000 / perChunk);
  for (const [name, data] of [
    ['SET:GET 1:1', input],
    ['GET', get],
    ['SET', set],
  ] as const) {
    const r = micro(`${name}, ${perChunk} per chunk`, (i) => handler.data(data[i % CHUNKS]!), ops);
    results.push({ name: r.name, nsPerOp: r.nsPerOp / perChunk });
  }
}
printMicro('Protocol handler, in process (ns per request; one write per chunk)', results);
console.log(
  `\n${textTable(['writes', 'bytes out'], [[String(conn.writes), String(conn.bytes)]])}\n(sanity: every chunk wrote once)`,
);
