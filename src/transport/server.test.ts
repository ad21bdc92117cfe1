import { afterEach, describe, expect, it } from 'vitest';
import {
  connect,
  destroyAllSockets,
  once,
  readBytes,
  readToEnd,
  waitFor,
  waitForStall,
} from '../../test/helpers/net.js';
import { startServer, type TestServer } from '../../test/helpers/server.js';
import type { Connection, ConnectionHandler, HandlerFactory } from './types.js';

// The transport's contract with handlers (src/transport/types.ts), driven by handlers written
// for each behaviour and checked over real sockets.

let server: TestServer | undefined;

afterEach(async () => {
  destroyAllSockets();
  await server?.close();
  server = undefined;
});

/** Start a server whose single handler is built by `make`; returns the connection it saw. */
async function withHandler(make: (conn: Connection) => ConnectionHandler, settings = {}) {
  let seen: Connection | undefined;
  const factory: HandlerFactory = (conn) => {
    seen = conn;
    return make(conn);
  };
  server = await startServer(settings, { handler: factory });
  const client = await connect(server.port);
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
