/**
 * The JSON protocol over real sockets: a real server on an ephemeral port, the in-memory store,
 * and clients that speak raw newline-delimited JSON.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProtocolHandler, type ProtocolHandlerFactory } from '../src/handler.js';
import { MemoryStore } from '../src/store/memory.js';
import { connect, destroyAllSockets, once, readToEnd, waitFor } from './helpers/net.js';
import { startServer, type TestServer } from './helpers/server.js';

type Response = {
  id?: string | number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
};

/** A raw NDJSON client: write lines, read response lines in order. */
class LineClient {
  private buffer = '';
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      let i = this.buffer.indexOf('\n');
      while (i !== -1) {
        this.lines.push(this.buffer.slice(0, i));
        this.buffer = this.buffer.slice(i + 1);
        i = this.buffer.indexOf('\n');
      }
      this.wake?.();
    });
  }

  static async open(port: number): Promise<LineClient> {
    return new LineClient(await connect(port));
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  send(...requests: (object | string)[]): void {
    this.write(requests.map((r) => `${typeof r === 'string' ? r : JSON.stringify(r)}\n`).join(''));
  }

  /** The next raw response line. */
  async nextLine(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (Date.now() > deadline) throw new Error('timed out waiting for a response line');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.lines.shift()!;
  }

  /** Send a raw line and read one raw line back. */
  async nextLineAfter(line: string): Promise<string> {
    this.write(`${line}\n`);
    return this.nextLine();
  }

  async next(): Promise<Response> {
    return JSON.parse(await this.nextLine()) as Response;
  }

  async take(n: number): Promise<Response[]> {
    const out: Response[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next());
    return out;
  }

  async request(req: object | string): Promise<Response> {
    this.send(req);
    return this.next();
  }

  async ok(req: object): Promise<unknown> {
    const r = await this.request(req);
    if (!r.ok) throw new Error(`${JSON.stringify(req)} failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }
}

let srv: TestServer;
let store: MemoryStore;
let protocol: ProtocolHandlerFactory;
const MAX_LINE = 64 * 1024;

beforeEach(async () => {
  store = new MemoryStore();
  let server: TestServer | undefined;
  protocol = createProtocolHandler({
    store,
    maxLineBytes: MAX_LINE,
    maxDepth: 64,
    connections: () => server!.server.stats,
  });
  server = await startServer({ maxLineBytes: MAX_LINE }, { handler: protocol, logLevel: 'info' });
  srv = server;
});

afterEach(async () => {
  destroyAllSockets();
  await srv.close();
  await store.close();
});

describe('JSON protocol over TCP', () => {
  it('echoes valid JSON back identical', async () => {
    const c = await LineClient.open(srv.port);
    const values = [
      null,
      true,
      0,
      -1.5e-7,
      'text with "quotes", \\ backslash, \n newline, \u0000 NUL, emoji 🎉',
      [],
      {},
      { nested: { list: [1, [2, [3, { deep: 'yes' }]]] }, __proto__x: 1 },
      JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":1}}'),
    ];
    for (const value of values) {
      const text = JSON.stringify(value);
      c.send(`{"action":"ECHO","value":${text}}`);
      expect(await c.nextLine()).toBe(`{"ok":true,"result":${text}}`);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('answers garbage with an error and serves the next line on the same connection', async () => {
    const c = await LineClient.open(srv.port);
    expect(await c.request('this is not json')).toMatchObject({ ok: false, error: { code: 'BAD_JSON' } });
    expect(await c.request('[1,2,3]')).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    expect(await c.request({ action: 'FLY', id: 9 })).toMatchObject({
      id: 9,
      ok: false,
      error: { code: 'UNKNOWN_ACTION' },
    });
    expect(await c.request({ action: 'ping' })).toEqual({ ok: true, result: 'PONG' });
  });

  it('answers 10 valid and 10 invalid lines pipelined in one write, 20 responses in order', async () => {
    const c = await LineClient.open(srv.port);
    const lines: string[] = [];
    for (let i = 0; i < 10; i++) {
      lines.push(JSON.stringify({ action: 'SET', key: `p^${i}`, value: i, id: `v${i}` }));
      lines.push(i % 2 === 0 ? `{broken ${i}` : JSON.stringify({ action: 'GET', id: `bad${i}` }));
    }
    c.write(`${lines.join('\n')}\n`);
    const responses = await c.take(20);
    for (let i = 0; i < 10; i++) {
      expect(responses[2 * i]).toEqual({ id: `v${i}`, ok: true, result: true });
      const bad = responses[2 * i + 1]!;
      expect(bad.ok).toBe(false);
      if (i % 2 === 0) expect(bad).toMatchObject({ error: { code: 'BAD_JSON' } });
      else
        expect(bad).toEqual({
          id: `bad${i}`,
          ok: false,
          error: { code: 'BAD_REQUEST', message: 'key: is required' },
        });
    }
  });

  it('echoes string and number ids, and omits the id when none was sent', async () => {
    const c = await LineClient.open(srv.port);
    expect(await c.request({ action: 'PING', id: 'abc-1' })).toEqual({
      id: 'abc-1',
      ok: true,
      result: 'PONG',
    });
    expect(await c.request({ action: 'PING', id: 42.5 })).toEqual({ id: 42.5, ok: true, result: 'PONG' });
    expect(await c.request({ action: 'PING', id: -0 })).toEqual({ id: 0, ok: true, result: 'PONG' });
    expect(await c.nextLineAfter('{"action":"PING"}')).toBe('{"ok":true,"result":"PONG"}');
  });

  it('shares values across connections, and key paths are equivalent however they are written', async () => {
    const a = await LineClient.open(srv.port);
    const b = await LineClient.open(srv.port);
    expect(await a.ok({ action: 'SET', key: 'users^42^name', value: { first: 'Ada' } })).toBe(true);
    expect(await b.ok({ action: 'GET', key: '^users^42^name' })).toEqual({ first: 'Ada' });
    expect(await b.ok({ action: 'GET', namespace: 'users', key: '42^name' })).toEqual({ first: 'Ada' });
    expect(await b.ok({ action: 'GET', namespace: 'users^42', key: 'name' })).toEqual({ first: 'Ada' });
    expect(await b.ok({ action: 'KEYS', namespace: 'users^42' })).toEqual({ keys: ['name'], next: null });
    for (const key of ['a^^b', 'a^', '^', '']) {
      expect(await a.request({ action: 'GET', key, id: key })).toMatchObject({
        id: key,
        ok: false,
        error: { code: 'BAD_KEY', message: expect.stringMatching(/^key: /) },
      });
    }
  });

  it('expires a key in real time and keeps the others', async () => {
    const c = await LineClient.open(srv.port);
    await c.ok({ action: 'SET', key: 'keep', value: 1 });
    await c.ok({ action: 'SET', key: 'brief', value: 2, ttl: 150 });
    const ttl = (await c.request({ action: 'TTL', key: 'brief' })) as Response;
    // Either still alive with at most its ttl left, or (on a very slow machine) already gone.
    if (ttl.ok) expect(ttl.result as number).toBeLessThanOrEqual(150);
    else expect(ttl.error?.code).toBe('KEY_NOT_FOUND');
    await waitFor(async () => (await c.request({ action: 'GET', key: 'brief' })).ok === false, {
      message: 'the key to expire',
    });
    expect(await c.ok({ action: 'EXISTS', key: 'brief' })).toBe(false);
    expect(await c.ok({ action: 'GET', key: 'keep' })).toBe(1);
  });

  it('1000 sequential SETs then 1000 GETs come back intact', async () => {
    const c = await LineClient.open(srv.port);
    const value = (i: number) => ({ i, s: `value-${i}`, list: [i, i * 2] });
    for (let i = 0; i < 1000; i++)
      expect(await c.ok({ action: 'SET', key: `seq^${i}`, value: value(i) })).toBe(true);
    for (let i = 0; i < 1000; i++) expect(await c.ok({ action: 'GET', key: `seq^${i}` })).toEqual(value(i));
    expect(await c.ok({ action: 'COUNT', namespace: 'seq' })).toBe(1000);
  });

  it('50 clients hammering one key with SET/GET and 50 with INCR: no errors, exact total', async () => {
    const rounds = 40;
    const setters = await Promise.all(Array.from({ length: 50 }, () => LineClient.open(srv.port)));
    const incrs = await Promise.all(Array.from({ length: 50 }, () => LineClient.open(srv.port)));
    const work = [
      ...setters.map(async (c, n) => {
        for (let r = 0; r < rounds; r++) {
          expect(await c.ok({ action: 'SET', key: 'hot', value: { n, r } })).toBe(true);
          const got = (await c.ok({ action: 'GET', key: 'hot' })) as { n: number; r: number };
          expect(got.n).toBeGreaterThanOrEqual(0);
        }
      }),
      ...incrs.map(async (c) => {
        for (let r = 0; r < rounds; r++) {
          // Pipelined in pairs to add some overlap.
          c.send({ action: 'INCR', key: 'counter' }, { action: 'INCR', key: 'counter', by: 2 });
          const [a, b] = await c.take(2);
          expect(a!.ok && b!.ok).toBe(true);
        }
      }),
    ];
    await Promise.all(work);
    const c = await LineClient.open(srv.port);
    expect(await c.ok({ action: 'GET', key: 'counter' })).toBe(50 * rounds * 3);
    const info = (await c.ok({ action: 'INFO' })) as {
      errors: { total: number };
      connections: { current: number };
    };
    expect(info.errors.total).toBe(0);
    expect(info.connections.current).toBe(101);
  });

  it('LINE_TOO_LONG keeps the connection usable', async () => {
    const c = await LineClient.open(srv.port);
    c.send({ action: 'SET', key: 'before', value: 1, id: 1 });
    c.write(`{"action":"SET","key":"huge","value":"${'z'.repeat(MAX_LINE * 3)}"}\n`);
    c.send({ action: 'GET', key: 'before', id: 2 });
    expect(await c.take(3)).toEqual([
      { id: 1, ok: true, result: true },
      { ok: false, error: { code: 'LINE_TOO_LONG', message: expect.stringContaining(`${MAX_LINE} bytes`) } },
      { id: 2, ok: true, result: 1 },
    ]);
    expect(await c.request({ action: 'GET', key: 'huge' })).toMatchObject({
      error: { code: 'KEY_NOT_FOUND' },
    });
  });

  it('answers a half-closed client fully (unterminated last line included), then closes', async () => {
    const socket = await connect(srv.port);
    socket.end('{"action":"PING","id":1}\n{"action":"PING","id":2}');
    const text = (await readToEnd(socket)).toString();
    expect(text).toBe('{"id":1,"ok":true,"result":"PONG"}\n{"id":2,"ok":true,"result":"PONG"}\n');
  });

  it('survives a storm of random bytes, bad UTF-8, deep nesting, huge lines and half-lines', async () => {
    const keeper = await LineClient.open(srv.port);
    await keeper.ok({ action: 'MSET', namespace: 'safe', entries: { a: 1, b: [2], c: { d: 'e' } } });

    const attacks: (Buffer | string)[][] = [
      [randomBytes(64 * 1024), '\n', randomBytes(10_000)],
      [
        Buffer.from([0x7b, 0xff, 0xfe, 0xc0, 0x80, 0x7d, 0x0a]),
        Buffer.from('{"action":"ECHO","value":"\xed\xa0\x80"}\n', 'latin1'),
      ],
      [
        '['.repeat(100_000),
        '\n',
        `{"action":"ECHO","value":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}\n`,
      ],
      [`{"action":"SET","key":"x","value":"${'q'.repeat(MAX_LINE * 4)}`],
      ['{"action":"SET","key":"safe^a","val'],
      ['\0\0\0\n\r\n{"__proto__":{"polluted":1},"action":"PING"}\n', '{"action":"DROP","namespace":""}\n'],
    ];
    await Promise.all(
      attacks.map(async (parts) => {
        const s = await connect(srv.port);
        for (const p of parts) s.write(p);
        // Half a line (or a whole storm), then vanish without a FIN.
        s.destroy();
        await once(s, 'close');
      }),
    );

    // Each bad line on a connection that stays gets its own clear error.
    const c = await LineClient.open(srv.port);
    c.write(Buffer.from([0xff, 0xfe, 0x0a]));
    c.write(`${'['.repeat(60_000)}\n`);
    c.send('{"action":"DROP","namespace":""}');
    c.send({ action: 'GET', namespace: 'safe', key: 'c' });
    const [utf8, deep, drop, got] = await c.take(4);
    expect(utf8).toMatchObject({ error: { code: 'BAD_JSON' } });
    expect(deep).toMatchObject({ error: { code: 'TOO_DEEP' } });
    expect(drop).toMatchObject({ error: { code: 'BAD_KEY' } });
    expect(got).toEqual({ ok: true, result: { d: 'e' } });

    expect(await keeper.ok({ action: 'MGET', namespace: 'safe', keys: ['a', 'b', 'c'] })).toEqual({
      a: 1,
      b: [2],
      c: { d: 'e' },
    });
    expect(await keeper.ok({ action: 'COUNT' })).toBe(3);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('counts commands and errors in INFO', async () => {
    const c = await LineClient.open(srv.port);
    await c.request('nope');
    await c.request({ action: 'GET', key: 'missing' });
    await c.ok({ action: 'PING' });
    const info = (await c.ok({ action: 'INFO' })) as {
      commands: { byAction: Record<string, number> };
      errors: { byCode: Record<string, number> };
      connections: { current: number; total: number };
    };
    expect(info.commands.byAction).toMatchObject({ GET: 1, PING: 1, INFO: 1 });
    expect(info.errors.byCode).toEqual({ BAD_JSON: 1, KEY_NOT_FOUND: 1 });
    expect(info.connections.current).toBe(1);
    expect(protocol.stats.errors.BAD_JSON).toBe(1);
  });
});
