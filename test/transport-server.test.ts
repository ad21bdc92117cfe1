import { createHook } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Connection, ConnectionHandler, HandlerFactory } from '../src/transport/types.js';
import { type Certificates, makeCertificates } from './auth-helpers.js';
import {
  connect,
  destroyAllSockets,
  once,
  readBytes,
  readToEnd,
  waitFor,
  waitForStall,
} from './helpers/net.js';
import { startServer, type TestServer } from './helpers/server.js';

// The transport's contract with handlers (src/transport/types.ts), driven by handlers written
// for each behaviour and checked over real sockets.

let server: TestServer | undefined;

afterEach(async () => {
  destroyAllSockets();
  await server?.close();
  server = undefined;
});

/** TLS clients opened by tests (`connect` tracks plain ones for `destroyAllSockets`). */
const tlsClients = new Set<tls.TLSSocket>();
afterEach(() => {
  for (const socket of tlsClients) socket.destroy();
  tlsClients.clear();
});

/**
 * Start a server whose single handler is built by `make`; returns the connection it saw. With
 * `tlsCa` (and `tlsCert`/`tlsKey` in settings) the client speaks TLS.
 */
async function withHandler(
  make: (conn: Connection) => ConnectionHandler,
  settings: Record<string, unknown> = {},
  tlsCa?: Buffer,
) {
  let seen: Connection | undefined;
  const factory: HandlerFactory = (conn) => {
    seen = conn;
    return make(conn);
  };
  server = await startServer(settings, { handler: factory });
  let client: net.Socket;
  if (tlsCa) {
    const socket = tls.connect({ port: server.port, host: '127.0.0.1', ca: tlsCa, servername: 'localhost' });
    tlsClients.add(socket);
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    client = socket;
  } else {
    client = await connect(server.port);
  }
  await waitFor(() => seen !== undefined, { message: 'the handler to be created' });
  return { client, conn: seen! };
}

describe('backpressure', () => {
  it('stops reading while output is congested and resumes on drain', async () => {
    const events: string[] = [];
    let dataWhileCongested = 0;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const { client, conn } = await withHandler((c) => ({
      data() {
        if (c.congested) dataWhileCongested++;
        events.push('data');
        // Answer every input with far more output than a client that is not reading can take.
        while (!c.congested) c.write(chunk);
      },
      drain() {
        events.push('drain');
      },
      close() {},
    }));
    client.pause();
    client.write('go');
    await waitFor(() => conn.congested, { message: 'congestion' });
    expect(conn.pendingBytes).toBeGreaterThan(64 * 1024);

    // Keep sending: a transport that still read would hand these to the handler while congested.
    const flood = Buffer.alloc(32 * 1024 * 1024, 1);
    client.write(flood);
    await waitForStall(() => client.writableLength, { done: () => client.writableLength === 0 });
    expect(client.writableLength).toBeGreaterThan(0);
    expect(dataWhileCongested).toBe(0);
    expect(events).toEqual(['data']);

    // Once the client reads, the server drains, tells the handler, and reads again.
    client.resume();
    await waitFor(() => events.includes('drain') && events.lastIndexOf('data') > events.indexOf('drain'), {
      message: 'drain then more data',
    });
    expect(dataWhileCongested).toBe(0);
  });
});

describe('reading', () => {
  it("schedules no read-more tick per chunk (Node's maybeReadMore), and still delivers every byte", async () => {
    let received = 0;
    let readMoreTicks = 0;
    // Ticks seen as async resources: a TickObject carries the function it will call.
    const hook = createHook({
      init(_id, type, _trigger, resource) {
        if (
          type === 'TickObject' &&
          (resource as { callback?: { name: string } }).callback?.name === 'maybeReadMore_'
        ) {
          readMoreTicks++;
        }
      },
    });
    const { client } = await withHandler(() => ({
      data(chunk) {
        received += chunk.length;
      },
      close() {},
    }));
    hook.enable();
    try {
      // Chunks one at a time, each read on its own.
      for (let i = 1; i <= 20; i++) {
        client.write('x'.repeat(100));
        await waitFor(() => received === i * 100, { message: `chunk ${i}` });
      }
    } finally {
      hook.disable();
    }
    expect(readMoreTicks).toBe(0);
  });
});

describe('output', () => {
  /** Records socket.write calls on the server's side of `client` into `writes` while `run` goes on. */
  async function recordServerWrites(client: net.Socket, writes: unknown[], run: () => Promise<void>) {
    const write = net.Socket.prototype.write;
    net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
      if (this.remotePort === client.localPort && this.localPort === client.remotePort) writes.push(args[0]);
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof write;
    try {
      await run();
    } finally {
      net.Socket.prototype.write = write;
    }
  }

  it("sends a turn's writes in one socket write at the end of the turn, in order", async () => {
    const { client } = await withHandler((c) => ({
      data(chunk) {
        const n = chunk.toString();
        c.write(`a${n}\n`);
        c.write(`b${n}\n`);
        c.write(Buffer.from(`c${n}\n`));
        c.write(`d${n}\n`);
        // Held for the end of the turn, and not counted as pending for a client that keeps up.
        expect(c.pendingBytes).toBe(0);
      },
      close() {},
    }));
    const writes: unknown[] = [];
    await recordServerWrites(client, writes, async () => {
      const reply = readBytes(client, 12);
      client.write('1');
      expect((await reply).toString()).toBe('a1\nb1\nc1\nd1\n');
    });
    // Strings are joined; a Buffer among them goes out corked with them (one writev).
    expect(writes).toEqual(['a1\nb1\n', Buffer.from('c1\n'), 'd1\n']);
  });

  it('joins the strings of a turn into one socket write', async () => {
    const { client } = await withHandler((c) => ({
      data() {
        for (let i = 0; i < 10; i++) c.write(`${i}\n`);
      },
      close() {},
    }));
    const writes: unknown[] = [];
    await recordServerWrites(client, writes, async () => {
      const reply = readBytes(client, 20);
      client.write('go');
      await reply;
    });
    expect(writes).toEqual(['0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n']);
  });

  it('writes at once when a turn holds a high-water mark of output', async () => {
    const big = 'x'.repeat(64 * 1024);
    const writes: unknown[] = [];
    let writtenInTurn = -1;
    const { client } = await withHandler((c) => ({
      data() {
        c.write('small\n');
        c.write(big);
        writtenInTurn = writes.length;
      },
      close() {},
    }));
    await recordServerWrites(client, writes, async () => {
      const reply = readBytes(client, 6 + big.length);
      client.write('go');
      await reply;
    });
    expect(writtenInTurn).toBe(1);
    expect(writes).toEqual([`small\n${big}`]);
  });

  it('end() sends what the turn held before the FIN', async () => {
    const { client } = await withHandler((c) => ({
      data() {
        c.write('first\n');
        c.write('second\n');
        c.end('bye\n');
      },
      close() {},
    }));
    const reply = readToEnd(client);
    client.write('go');
    expect((await reply).toString()).toBe('first\nsecond\nbye\n');
  });

  it('destroy() drops what the turn held', async () => {
    // One server per test: withHandler replaces the one afterEach closes.
    const dropped = await withHandler((c) => ({
      data() {
        c.write('never\n');
        c.destroy();
      },
      close() {},
    }));
    const nothing = readToEnd(dropped.client).catch(() => Buffer.alloc(0));
    dropped.client.write('go');
    expect((await nothing).toString()).toBe('');
  });
});

describe('pauseInput / resumeInput', () => {
  it('stops handing input to the handler until resumed, however much the client sends', async () => {
    let received = 0;
    let dataWhilePaused = 0;
    let paused = false;
    let pausedOnce = false;
    const { client, conn } = await withHandler((c) => ({
      data(chunk) {
        if (paused) dataWhilePaused++;
        received += chunk.length;
        if (!pausedOnce) {
          pausedOnce = paused = true;
          c.pauseInput();
        }
      },
      close() {},
    }));
    // More than the kernel's socket buffers hold: a transport that still read would deliver it.
    const flood = Buffer.alloc(32 * 1024 * 1024, 1);
    client.write(flood);
    await waitForStall(() => client.writableLength, { done: () => client.writableLength === 0 });
    expect(client.writableLength).toBeGreaterThan(0);
    expect(dataWhilePaused).toBe(0);
    expect(received).toBeLessThan(flood.length);

    paused = false;
    conn.resumeInput();
    await waitFor(() => received === flood.length, { message: 'every byte once resumed' });
  });

  it('a drain does not resume input the handler paused', async () => {
    let dataWhilePaused = 0;
    let paused = false;
    const big = Buffer.alloc(1024 * 1024, 7);
    const { client, conn } = await withHandler((c) => ({
      data() {
        if (paused) {
          dataWhilePaused++;
          return;
        }
        paused = true;
        c.pauseInput();
        while (!c.congested) c.write(big);
      },
      close() {},
    }));
    client.pause();
    client.write('go');
    await waitFor(() => conn.congested, { message: 'congestion' });
    client.resume();
    await waitFor(() => !conn.congested, { message: 'the drain' });
    client.write(Buffer.alloc(32 * 1024 * 1024, 1));
    await waitForStall(() => client.writableLength, { done: () => client.writableLength === 0 });
    expect(client.writableLength).toBeGreaterThan(0);
    expect(dataWhilePaused).toBe(0);
  });
});

describe('notifyWhenFlushed', () => {
  /** Under the high-water mark (64 KiB; TLS sockets keep Node's 16 KiB), so nothing congests. */
  const CHUNK = Buffer.alloc(8 * 1024, 7);
  /** 32 MiB: far more than the kernel's socket buffers hold for a client that does not read. */
  const TOTAL_CHUNKS = 4096;

  /**
   * A writer paced only by flush notifications: each drain() writes the next chunk and asks to
   * hear when it has flushed. If drain() came before the flush, it would run ahead of a client
   * that does not read.
   */
  function pacedWriter() {
    const state = { drains: 0, chunks: 0, congestedSeen: false, pendingAtDrain: [] as number[] };
    const make = (c: Connection): ConnectionHandler => {
      const next = () => {
        if (state.chunks === TOTAL_CHUNKS) return;
        state.chunks++;
        c.write(CHUNK);
        if (c.congested) state.congestedSeen = true;
        c.notifyWhenFlushed();
      };
      return {
        data: next,
        drain() {
          state.drains++;
          state.pendingAtDrain.push(c.pendingBytes);
          next();
        },
        close() {},
      };
    };
    return { state, make };
  }

  /** Counts what the client reads without holding it. */
  function countBytes(client: net.Socket): { bytes: number } {
    const counter = { bytes: 0 };
    client.on('data', (chunk: Buffer) => {
      counter.bytes += chunk.length;
    });
    return counter;
  }

  async function pacedByFlushes(settings: Record<string, unknown> = {}, tlsCa?: Buffer) {
    const writer = pacedWriter();
    const { client, conn } = await withHandler(writer.make, settings, tlsCa);
    const received = countBytes(client);
    client.pause();
    client.write('go');
    // The kernel's buffers fill up, then one chunk stays pending and no drain() comes for it.
    await waitForStall(() => writer.state.drains, { done: () => writer.state.chunks === TOTAL_CHUNKS });
    expect(writer.state.chunks).toBeLessThan(TOTAL_CHUNKS);
    expect(conn.pendingBytes).toBeGreaterThan(0);
    expect(writer.state.drains).toBe(writer.state.chunks - 1);

    // The client reads: each chunk's flush brings the next, to the end, never congested.
    client.resume();
    await waitFor(() => received.bytes === TOTAL_CHUNKS * CHUNK.length, {
      timeoutMs: 20_000,
      message: 'every chunk',
    });
    await waitFor(() => writer.state.drains === TOTAL_CHUNKS, { message: 'the last flush' });
    expect(writer.state.congestedSeen).toBe(false);
    expect(conn.congested).toBe(false);
    // Nothing was written after the last chunk, so it had all flushed when drain() came.
    expect(writer.state.pendingAtDrain.at(-1)).toBe(0);
  }

  it('calls drain() once what was written has flushed, though the connection never congested', async () => {
    await pacedByFlushes();
  });

  describe('over TLS', () => {
    let certs: Certificates;
    beforeAll(() => {
      certs = makeCertificates();
    });
    afterAll(() => certs.cleanup());

    it('calls drain() once what was written has flushed, though the connection never congested', async () => {
      await pacedByFlushes({ tlsCert: certs.serverCert, tlsKey: certs.serverKey }, readFileSync(certs.ca));
    });
  });

  it('makes one drain() call for requests made before one flush', async () => {
    let drains = 0;
    const { client } = await withHandler((c) => ({
      data(chunk) {
        c.write(`${chunk}\n`);
        c.notifyWhenFlushed();
        c.notifyWhenFlushed();
        c.notifyWhenFlushed();
      },
      drain() {
        drains++;
      },
      close() {},
    }));
    client.write('a');
    expect((await readBytes(client, 2)).toString()).toBe('a\n');
    await waitFor(() => drains >= 1, { message: 'the first drain' });
    // A later request gets its own call; had the first three not shared one, this would be the fourth.
    client.write('b');
    expect((await readBytes(client, 2)).toString()).toBe('b\n');
    await waitFor(() => drains >= 2, { message: 'the second drain' });
    expect(drains).toBe(2);
  });

  it('never calls drain() after the handler ended the connection, even once output flushes', async () => {
    const writer = pacedWriter();
    let closed = false;
    const { client, conn } = await withHandler((c) => ({
      ...writer.make(c),
      close() {
        closed = true;
      },
    }));
    client.pause();
    client.write('go');
    await waitForStall(() => writer.state.drains);
    const drains = writer.state.drains;
    expect(conn.pendingBytes).toBeGreaterThan(0);
    // A flush notification is outstanding; the connection ends before the output it waits for flushes.
    conn.end();
    conn.notifyWhenFlushed();
    await readToEnd(client);
    await waitFor(() => closed, { message: 'the server side to close' });
    expect(writer.state.drains).toBe(drains);
    expect(() => conn.notifyWhenFlushed()).not.toThrow();
  });

  it('never calls drain() after the peer reset the connection', async () => {
    const writer = pacedWriter();
    let closes = 0;
    const { client, conn } = await withHandler((c) => ({
      ...writer.make(c),
      close() {
        closes++;
      },
    }));
    client.pause();
    client.write('go');
    await waitForStall(() => writer.state.drains);
    const drains = writer.state.drains;
    expect(conn.pendingBytes).toBeGreaterThan(0);
    client.resetAndDestroy();
    await waitFor(() => closes === 1, { message: 'close' });
    conn.notifyWhenFlushed();
    // Whatever the reset did to the outstanding write, it never reaches the handler: one more round
    // trip through the event loop's I/O phase makes sure a late callback would have run.
    await new Promise((resolve) => setImmediate(resolve));
    expect(writer.state.drains).toBe(drains);
    expect(closes).toBe(1);
  });
});

describe('lifecycle', () => {
  it("lets the handler answer the client's half-close before ending", async () => {
    let input = '';
    const { client } = await withHandler((c) => ({
      data(chunk) {
        input += chunk.toString();
      },
      end() {
        c.end(`got ${input.length} bytes\n`);
      },
      close() {},
    }));
    const reply = readToEnd(client);
    client.end('hello');
    expect((await reply).toString()).toBe('got 5 bytes\n');
  });

  it('delivers nothing to the handler after it ended the connection', async () => {
    let calls = 0;
    let closed = false;
    const { client } = await withHandler((c) => ({
      data() {
        calls++;
        c.end('bye\n');
      },
      close() {
        closed = true;
      },
    }));
    // The client keeps writing after our FIN arrives; the transport reads it only to reach EOF.
    client.allowHalfOpen = true;
    const reply = readToEnd(client);
    client.write('first');
    expect((await reply).toString()).toBe('bye\n');
    client.end('second');
    // The server side closes only after reading 'second' and the FIN behind it.
    await waitFor(() => closed, { message: 'the server side to close' });
    expect(calls).toBe(1);
  });

  it('calls close once, and write/end/destroy after close are harmless no-ops', async () => {
    let closes = 0;
    const { client, conn } = await withHandler(() => ({ data() {}, close: () => void closes++ }));
    client.resetAndDestroy();
    await waitFor(() => closes === 1, { message: 'close' });
    expect(conn.closed).toBe(true);
    expect(() => {
      conn.write('late');
      conn.end('late');
      conn.destroy();
    }).not.toThrow();
    expect(closes).toBe(1);
  });

  it('survives a handler that throws: the connection is closed, logged at error with its id', async () => {
    const { client, conn } = await withHandler(() => ({
      data() {
        throw new Error('handler bug');
      },
      close() {},
    }));
    client.write('boom');
    await once(client, 'close');
    const fault = server!.logs.find((r) => r.msg === 'handler fault; closing connection');
    expect(fault).toMatchObject({ level: 50, conn: conn.id, err: { message: 'handler bug' } });
    const other = await connect(server!.port);
    expect(other.destroyed).toBe(false);
  });

  it('exempts a connection from the idle timeout when the handler asks', async () => {
    let first = true;
    const { client: exempt } = await withHandler(
      (c) => {
        c.idleExempt = first;
        first = false;
        return { data() {}, close() {} };
      },
      { idleTimeout: 0.1 },
    );
    // Later connections are not exempt: each closing for idleness proves the timeout has passed.
    const plain = await connect(server!.port);
    await once(plain, 'close');
    const later = await connect(server!.port);
    await once(later, 'close');
    expect(exempt.destroyed).toBe(false);
  });
});

describe('graceful shutdown', () => {
  it("waits for each handler's shutdown() and flushes what it wrote before EOF", async () => {
    const { client } = await withHandler((c) => ({
      data() {},
      shutdown: () =>
        new Promise<void>((resolve) =>
          setImmediate(() => {
            c.write('finished\n');
            resolve();
          }),
        ),
      close() {},
    }));
    const reply = readToEnd(client);
    const summary = await server!.close();
    expect((await reply).toString()).toBe('finished\n');
    expect(summary).toMatchObject({ connections: 1, graceful: 1, destroyed: 0 });
  });

  it('destroys connections that are still busy when the grace period runs out', async () => {
    const { client } = await withHandler(
      () => ({ data() {}, shutdown: () => new Promise(() => {}), close() {} }),
      {
        shutdownGrace: 0.2,
      },
    );
    const closed = once(client, 'close');
    const summary = await server!.close();
    await closed;
    expect(summary).toMatchObject({ connections: 1, graceful: 0, destroyed: 1 });
  });

  it('destroys a connection whose client never reads its pending output', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024);
    const { client, conn } = await withHandler(
      (c) => ({
        data() {
          c.write(big);
        },
        close() {},
      }),
      { shutdownGrace: 0.2 },
    );
    client.pause();
    client.write('x');
    await waitFor(() => conn.congested, { message: 'congestion' });
    const summary = await server!.close();
    expect(summary.destroyed).toBe(1);
    // What the client reads before the close is a prefix of the output, never more.
    expect(client.destroyed || client.readableLength <= big.length).toBe(true);
  });

  it('keeps delivering input during shutdown so the handler can refuse it itself', async () => {
    let release!: () => void;
    const { client } = await withHandler((c) => {
      let stopping = false;
      return {
        data(chunk) {
          c.write(stopping ? `refused ${chunk}\n` : `ok ${chunk}\n`);
          if (stopping) release();
        },
        shutdown() {
          stopping = true;
          return new Promise<void>((resolve) => {
            release = resolve;
          });
        },
        close() {},
      };
    });
    expect(
      (
        await (async () => {
          client.write('a');
          return readBytes(client, 5);
        })()
      ).toString(),
    ).toBe('ok a\n');
    const reply = readToEnd(client);
    const closing = server!.close();
    client.write('b');
    expect((await reply).toString()).toBe('refused b\n');
    expect((await closing).graceful).toBe(1);
  });
});
