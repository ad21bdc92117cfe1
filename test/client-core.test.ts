/**
 * The client's connection core (pipelining, FIFO matching, timeouts, offline queue, reconnects,
 * close/destroy) against a small scripted NDJSON server over real sockets. The scripted server can
 * hold responses, die mid-request and send garbage, which the real server never does on purpose.
 * test/client.test.ts runs the typed API against the real server.
 */
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type CaretClient, CaretError, connect, createClient } from '../src/client/index.js';

type Req = { action: string; [k: string]: unknown };
/** What the scripted server does with a request: answer, or hold the answer until released. */
type Script = (
  req: Req,
  conn: FakeConn,
) => { ok: true; result: unknown } | { ok: false; code: string } | 'hold';

interface FakeConn {
  socket: net.Socket;
  /** Responses not yet written, in request order; a held one blocks those behind it. */
  out: ({ line: string } | { held: Req })[];
}

/** A one-JSON-object-per-line server whose answers a test scripts. */
class FakeServer {
  readonly conns = new Set<FakeConn>();
  readonly received: Req[] = [];
  accepted = 0;
  /** Turn this many new connections away with TOO_MANY_CONNECTIONS. */
  refuse = 0;
  script: Script = defaultScript;
  private server: net.Server | null = null;
  port = 0;

  async start(port = this.port): Promise<this> {
    const server = net.createServer((socket) => this.onConnection(socket));
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this;
  }

  /** Stop listening and drop every connection abruptly (a crash, as clients see it). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of this.conns) c.socket.destroy();
    this.conns.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Answer every held request (with `result`), in order, on every connection. */
  release(result: unknown = 'late'): void {
    for (const c of this.conns) {
      c.out = c.out.map((o) => ('held' in o ? { line: `${JSON.stringify({ ok: true, result })}\n` } : o));
      this.pump(c);
    }
  }

  get heldCount(): number {
    let n = 0;
    for (const c of this.conns) for (const o of c.out) if ('held' in o) n++;
    return n;
  }

  send(line: string): void {
    for (const c of this.conns) c.socket.write(line);
  }

  private onConnection(socket: net.Socket): void {
    this.accepted++;
    if (this.refuse > 0) {
      // What the real transport does at its connection limit.
      this.refuse--;
      socket.on('error', () => {});
      // Keep reading so that the client's FIN is seen and the socket closes.
      socket.resume();
      socket.end('{"ok":false,"error":{"code":"TOO_MANY_CONNECTIONS","message":"at the limit"}}\n');
      return;
    }
    const conn: FakeConn = { socket, out: [] };
    this.conns.add(conn);
    socket.on('close', () => this.conns.delete(conn));
    socket.on('error', () => {});
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl !== -1) {
        const req = JSON.parse(buf.slice(0, nl)) as Req;
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        this.received.push(req);
        const r = this.script(req, conn);
        if (r === 'hold') conn.out.push({ held: req });
        else {
          const body = r.ok
            ? { ok: true, result: r.result }
            : { ok: false, error: { code: r.code, message: 'scripted' } };
          conn.out.push({ line: `${JSON.stringify({ ...('id' in req ? { id: req.id } : {}), ...body })}\n` });
        }
      }
      this.pump(conn);
    });
    // Like the real transport: finish what was read, then close after the client's FIN.
    socket.on('end', () => socket.end());
  }

  private pump(c: FakeConn): void {
    let data = '';
    while (c.out.length > 0 && 'line' in c.out[0]!) data += (c.out.shift() as { line: string }).line;
    if (data !== '' && !c.socket.destroyed) c.socket.write(data);
  }
}

const store = new Map<string, unknown>();
function defaultScript(req: Req, conn: FakeConn): ReturnType<Script> {
  switch (req.action) {
    case 'STALL':
      // Stop reading: the client's writes back up behind this request.
      conn.socket.pause();
      return 'hold';
    case 'PING':
      return { ok: true, result: 'PONG' };
    case 'ECHO':
      return { ok: true, result: req.value };
    case 'SET':
      store.set(req.key as string, req.value);
      return { ok: true, result: true };
    case 'GET':
      return store.has(req.key as string)
        ? { ok: true, result: store.get(req.key as string) }
        : { ok: false, code: 'KEY_NOT_FOUND' };
    case 'HOLD':
      return 'hold';
    default:
      return { ok: false, code: 'UNKNOWN_ACTION' };
  }
}

/** Poll a condition with a bounded deadline (never a fixed sleep as the assertion). */
async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function rejection(p: Promise<unknown>): Promise<CaretError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CaretError);
    return err as CaretError;
  }
  throw new Error('expected the promise to reject');
}

/** The next `name` event (unlike events.once, an 'error' event in between does not reject it). */
function nextEvent(emitter: CaretClient, name: 'end' | 'ready' | 'reconnecting' | 'close'): Promise<void> {
  return new Promise((resolve) => emitter.once(name, () => resolve()));
}

/** A port nothing listens on (bound then released). */
async function deadPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const servers: FakeServer[] = [];
const clients: CaretClient[] = [];
async function fake(): Promise<FakeServer> {
  const s = await new FakeServer().start(0);
  servers.push(s);
  return s;
}
function track<C extends CaretClient>(c: C): C {
  clients.push(c);
  return c;
}
const fastRetry = () => 10;

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.stop();
  store.clear();
  vi.restoreAllMocks();
});

describe('pipelining', () => {
  it('sends 10000 requests made in one tick in one write and matches every response in order', async () => {
    const server = await fake();
    const db = track(await connect(`caretkv://127.0.0.1:${server.port}`));
    const write = vi.spyOn(net.Socket.prototype, 'write');
    const n = 10_000;
    const all: Promise<number>[] = [];
    for (let i = 0; i < n; i++) all.push(db.echo(i));
    const results = await Promise.all(all);
    expect(results).toEqual(Array.from({ length: n }, (_, i) => i));
    // Count the client's writes only (the fake server writes through the same prototype).
    const clientWrites = write.mock.contexts.filter((s) => (s as net.Socket).remotePort === server.port);
    expect(clientWrites.length).toBe(1);
    expect(db.pendingCount).toBe(0);
  });

  it('routes pushes (lines with "event") to the push event without disturbing response order', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port }));
    const pushes: unknown[] = [];
    db.on('push', (m) => pushes.push(m));
    const held = db.send({ action: 'HOLD' });
    await waitFor(() => server.heldCount === 1, 'the server to hold the request');
    server.send('{"event":"message","channel":"news","message":1}\n');
    server.release('answer');
    expect(await held).toBe('answer');
    expect(pushes).toEqual([{ event: 'message', channel: 'news', message: 1 }]);
  });

  it('reassembles responses split anywhere, multi-byte characters included', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port }));
    const value = { text: 'Ada Lovelace ✓ 😀 '.repeat(20_000) };
    expect(await db.echo(value)).toEqual(value);
  });
});

describe('errors', () => {
  it('turns an error response into a CaretError with the code and the action in the message', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port }));
    const err = await rejection(db.get('users^42'));
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('KEY_NOT_FOUND');
    expect(err.action).toBe('GET');
    expect(err.message).toContain('GET users^42');
    expect(await db.getOr('users^42', 'none')).toBe('none');
    await db.set('users^42', null);
    expect(await db.getOr('users^42', 'none')).toBeNull();
  });

  it('refuses a request that cannot be encoded, without sending anything', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port }));
    const err = await rejection(db.set('k', 10n));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(await db.ping()).toBe('PONG');
    expect(server.received.map((r) => r.action)).toEqual(['PING']);
  });

  it('resets the connection on a line that is not a response, fails what was in flight, and recovers', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port, retryStrategy: fastRetry }));
    const errors: Error[] = [];
    db.on('error', (e) => errors.push(e));
    const held = db.send({ action: 'HOLD' });
    await waitFor(() => server.heldCount === 1, 'the held request');
    server.send('this is not json\n');
    const err = await rejection(held);
    expect(err.code).toBe('PROTOCOL_ERROR');
    expect(errors.some((e) => (e as CaretError).code === 'PROTOCOL_ERROR')).toBe(true);
    expect(await db.ping()).toBe('PONG');
    expect(server.accepted).toBe(2);
  });

  it('treats a response nobody asked for as a protocol error', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port, retryStrategy: fastRetry }));
    db.on('error', () => {});
    const reconnecting = nextEvent(db, 'reconnecting');
    server.send('{"ok":true,"result":"unsolicited"}\n');
    await reconnecting;
    expect(await db.ping()).toBe('PONG');
  });
});

describe('timeouts', () => {
  it('rejects a slow request with TIMEOUT and still consumes its late response in order', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port, requestTimeout: 300 }));
    const err = await rejection(db.send({ action: 'HOLD' }));
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toMatch(/^HOLD: /);
    // The server answers the held request late, right before the next one: the next request must
    // get its own result, not 'late'.
    server.script = (req, conn) => {
      if (req.action === 'ECHO') server.release('late');
      return defaultScript(req, conn);
    };
    expect(await db.echo('mine')).toBe('mine');
    expect(await db.echo('again')).toBe('again');
    expect(db.pendingCount).toBe(0);
  });

  it('times out requests waiting offline', async () => {
    const db = track(
      createClient({
        port: await deadPort(),
        lazyConnect: true,
        retryFirstConnect: true,
        requestTimeout: 100,
      }),
    );
    db.on('error', () => {});
    const err = await rejection(db.ping());
    expect(err.code).toBe('TIMEOUT');
    expect(db.offlineCount).toBe(0);
  });
});

describe('connecting', () => {
  it('parses caretkv:// URLs and rejects a first connect that fails', async () => {
    const port = await deadPort();
    const err = await rejection(connect(`caretkv://127.0.0.1:${port}`));
    expect(err.code).toBe('CONNECT_FAILED');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    await expect(connect('redis://127.0.0.1:1')).rejects.toThrow(/scheme/);
  });

  it('lazyConnect opens no connection until the first request', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port, lazyConnect: true }));
    expect(db.state).toBe('wait');
    expect(server.accepted).toBe(0);
    expect(await db.ping()).toBe('PONG');
    expect(db.state).toBe('ready');
    expect(server.accepted).toBe(1);
  });

  it('bounds the offline queue: past maxOfflineQueue a request fails at once', async () => {
    const db = track(
      createClient({
        port: await deadPort(),
        lazyConnect: true,
        retryFirstConnect: true,
        maxOfflineQueue: 2,
      }),
    );
    db.on('error', () => {});
    const a = db.ping();
    const b = db.ping();
    const err = await rejection(db.ping());
    expect(err.code).toBe('OFFLINE_QUEUE_FULL');
    expect(err.message).toContain('maxOfflineQueue');
    expect(db.offlineCount).toBe(2);
    db.destroy();
    expect((await rejection(a)).code).toBe('CONNECTION_CLOSED');
    expect((await rejection(b)).code).toBe('CONNECTION_CLOSED');
  });

  it('fails a queued request with MAX_RETRIES after maxRetriesPerRequest failed attempts', async () => {
    const db = track(
      createClient({
        port: await deadPort(),
        retryFirstConnect: true,
        retryStrategy: fastRetry,
        maxRetriesPerRequest: 2,
      }),
    );
    db.on('error', () => {});
    const attempts: number[] = [];
    db.on('reconnecting', (attempt) => attempts.push(attempt));
    const err = await rejection(db.ping());
    expect(err.code).toBe('MAX_RETRIES');
    expect(err.message).toContain('maxRetriesPerRequest');
    expect(attempts.slice(0, 3)).toEqual([1, 2, 3]);
  });

  it('closes for good when retryStrategy gives up', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port, retryStrategy: (n) => (n > 2 ? null : 10) }));
    db.on('error', () => {});
    const ended = nextEvent(db, 'end');
    await server.stop();
    await ended;
    expect(db.state).toBe('closed');
    expect((await rejection(db.ping())).code).toBe('CONNECTION_CLOSED');
  });
});

describe('reconnecting', () => {
  it('survives a server restart: in-flight requests fail cleanly, queued ones go through', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port, retryStrategy: fastRetry }));
    db.on('error', () => {});
    const states: string[] = [];
    for (const e of ['close', 'reconnecting', 'ready'] as const) db.on(e, () => states.push(e));

    const inflight = [db.send({ action: 'HOLD' }), db.send({ action: 'HOLD' })];
    await waitFor(() => server.heldCount === 2, 'both requests to reach the server');
    await server.stop();
    for (const p of inflight) {
      const err = await rejection(p);
      expect(err.code).toBe('CONNECTION_LOST');
      expect(err.action).toBe('HOLD');
    }
    await waitFor(() => db.state === 'reconnecting' || db.state === 'connecting', 'the client to reconnect');
    const queued = [db.set('a', 1), db.echo('queued'), db.get('a')];
    expect(db.offlineCount).toBe(3);

    await server.start();
    expect(await Promise.all(queued)).toEqual([true, 'queued', 1]);
    expect(states.slice(0, 2)).toEqual(['close', 'reconnecting']);
    expect(states).toContain('ready');
    expect(db.state).toBe('ready');
  });

  it('re-sends everything after the server turns the connection away at its limit (nothing ran)', async () => {
    const server = await fake();
    server.refuse = 1;
    const db = track(await connect({ port: server.port, retryStrategy: fastRetry }));
    const errors: CaretError[] = [];
    db.on('error', (e) => errors.push(e as CaretError));
    expect(await Promise.all([db.set('a', 1), db.get('a')])).toEqual([true, 1]);
    expect(server.accepted).toBe(2);
    expect(errors.map((e) => e.code)).toContain('TOO_MANY_CONNECTIONS');
  });

  it('re-sends requests still unanswered at a shutdown push (they did not run)', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port, retryStrategy: fastRetry }));
    const errors: CaretError[] = [];
    db.on('error', (e) => errors.push(e as CaretError));
    server.script = (req, conn) => (req.action === 'ECHO' ? 'hold' : defaultScript(req, conn));
    const pending = [db.echo(1), db.echo(2), db.echo(3)];
    await waitFor(() => server.heldCount === 3, 'the requests to reach the server');
    // The real server's last line before it ends the connection.
    server.send('{"event":"shutdown","message":"shutting down"}\n');
    await server.stop();
    server.script = defaultScript;
    await server.start();
    expect(await Promise.all(pending)).toEqual([1, 2, 3]);
    expect(errors.map((e) => e.code)).toContain('SHUTTING_DOWN');
  });

  it('replays in-flight requests after a reconnect when replayInFlight is set', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port, retryStrategy: fastRetry, replayInFlight: true }));
    db.on('error', () => {});
    const echoed = db.echo('once more');
    server.script = (req, conn) => (req.action === 'ECHO' ? 'hold' : defaultScript(req, conn));
    // The first ECHO is held; the server dies; the replay is answered normally.
    const held = db.echo('replayed');
    await waitFor(() => server.heldCount >= 1, 'the held request');
    server.script = defaultScript;
    await server.stop();
    await server.start();
    expect(await held).toBe('replayed');
    expect(await echoed).toBe('once more');
    expect(server.received.filter((r) => r.value === 'replayed')).toHaveLength(2);
  });

  it('resends requests that never left the client when the socket dies', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port, retryStrategy: fastRetry }));
    db.on('error', () => {});
    const stalled = db.send({ action: 'STALL' });
    await waitFor(() => server.heldCount === 1, 'the server to stop reading');
    // More than the kernel buffers: the socket stays over its high-water mark, so what follows
    // waits in the client's own buffer.
    const big = db.echo('x'.repeat(20 * 1024 * 1024));
    await new Promise((r) => setImmediate(r));
    const unsent = db.echo('unsent');
    await new Promise((r) => setImmediate(r));
    await server.stop();
    expect((await rejection(stalled)).code).toBe('CONNECTION_LOST');
    expect((await rejection(big)).code).toBe('CONNECTION_LOST');
    await server.start();
    expect(await unsent).toBe('unsent');
    expect(server.received.filter((r) => r.value === 'unsent')).toHaveLength(1);
  });
});

describe('close and destroy', () => {
  it('close() refuses new requests, waits for in-flight ones, then ends the connection', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port }));
    const held = db.send({ action: 'HOLD' });
    await waitFor(() => server.heldCount === 1, 'the held request');
    let closed = false;
    const closing = db.close().then(() => {
      closed = true;
    });
    expect(db.state).toBe('closing');
    expect((await rejection(db.ping())).code).toBe('CONNECTION_CLOSED');
    expect(closed).toBe(false);
    server.release('finished');
    expect(await held).toBe('finished');
    await closing;
    expect(db.state).toBe('closed');
    await waitFor(() => server.conns.size === 0, 'the server to see the connection close');
  });

  it('close() on a lazy client that never connected resolves at once', async () => {
    const db = track(createClient({ port: 1, lazyConnect: true }));
    await db.close();
    expect(db.state).toBe('closed');
  });

  it('destroy() rejects everything pending at once', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port }));
    const held = db.send({ action: 'HOLD' });
    await waitFor(() => server.heldCount === 1, 'the held request');
    const ended = once(db, 'end');
    db.destroy();
    const err = await rejection(held);
    expect(err.code).toBe('CONNECTION_CLOSED');
    expect(err.message).toContain('destroy()');
    await ended;
    expect(db.state).toBe('closed');
    await waitFor(() => server.conns.size === 0, 'the server to see the connection close');
  });
});

describe('handshake hook', () => {
  it('runs before queued requests on every connection', async () => {
    const server = await fake();
    const db = track(createClient({ port: server.port, lazyConnect: true, retryStrategy: fastRetry }));
    db.on('error', () => {});
    db.addHandshake(async (send) => {
      await send({ action: 'ECHO', value: 'hello' });
    });
    expect(await db.ping()).toBe('PONG');
    await server.stop();
    const ready = nextEvent(db, 'ready');
    await server.start();
    await ready;
    expect(server.received.map((r) => r.action)).toEqual(['ECHO', 'PING', 'ECHO']);
  });
});

describe('typing', () => {
  it('derives request and result types from the schema', async () => {
    const server = await fake();
    const db = track(await connect({ port: server.port }));
    const pong: 'PONG' = await db.ping();
    const written: boolean = await db.set('k', { a: 1 }, { ttl: 1000, ifAbsent: true });
    const raw: boolean = await db.send({ action: 'SET', key: 'k', value: 2 });
    expect([pong, written, raw]).toEqual(['PONG', true, true]);
    // @ts-expect-error ttl must be a number
    void db.set('k', 1, { ttl: '5' }).catch(() => {});
  });
});
