import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { canBind, connect, destroyAllSockets, once, readToEnd, roundTrip, waitFor } from './helpers/net.js';
import { startEchoServer, type TestServer } from './helpers/server.js';

// Black-box tests of the transport with the echo handler, in-process, over real sockets.

let server: TestServer | undefined;

afterEach(async () => {
  destroyAllSockets();
  await server?.close();
  server = undefined;
});

describe('echo over the transport', () => {
  it('gives 20 simultaneous clients exactly their own bytes back', async () => {
    server = await startEchoServer();
    const { port } = server;
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect(port)));
    const payloads = clients.map((_, i) =>
      Buffer.concat([Buffer.from(`client ${i}:`), randomBytes(64 * 1024)]),
    );
    const replies = await Promise.all(clients.map((client, i) => roundTrip(client, payloads[i]!)));
    for (const [i, reply] of replies.entries()) expect(reply.equals(payloads[i]!)).toBe(true);
    expect(server.server.stats.connections).toBe(20);
  });

  it('round-trips a 1 MiB binary payload exactly, including every byte value', async () => {
    server = await startEchoServer();
    const client = await connect(server.port);
    const payload = Buffer.concat([
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      randomBytes(1024 * 1024 - 256),
    ]);
    const reply = await roundTrip(client, payload);
    expect(reply.length).toBe(payload.length);
    expect(reply.equals(payload)).toBe(true);
  });

  it('answers a half-close: everything sent before FIN comes back, then EOF', async () => {
    server = await startEchoServer();
    const client = await connect(server.port);
    const payload = randomBytes(300 * 1024);
    const reply = readToEnd(client);
    client.end(payload);
    expect((await reply).equals(payload)).toBe(true);
    await waitFor(() => server!.server.stats.connections === 0, { message: 'the connection to be released' });
  });

  it('survives 50 abrupt resets in a row, some mid-transfer, and still serves', async () => {
    server = await startEchoServer();
    for (let i = 0; i < 50; i++) {
      const client = await connect(server.port);
      // Odd rounds vanish while the server is still writing a large echo back.
      client.write(i % 2 ? randomBytes(2 * 1024 * 1024) : Buffer.from('partial line without newl'));
      if (i % 2) await once(client, 'data');
      client.resetAndDestroy();
      await once(client, 'close');
    }
    const client = await connect(server.port);
    expect((await roundTrip(client, 'still here\n')).toString()).toBe('still here\n');
    await waitFor(() => server!.server.stats.connections === 1, {
      message: 'the reset connections to be released',
    });
    expect(server.server.stats.connectionsTotal).toBe(51);
    expect(server.logs.filter((r) => r.level >= 50)).toEqual([]);
  });

  it('puts the connection id on every log line about a connection', async () => {
    server = await startEchoServer();
    const client = await connect(server.port);
    await roundTrip(client, 'x');
    client.end();
    await waitFor(() => server!.logs.some((r) => r.msg === 'connection closed'), { message: 'close log' });
    const perConnection = server.logs.filter((r) => r.msg !== 'listening');
    expect(perConnection.map((r) => r.msg)).toEqual(
      expect.arrayContaining(['connection opened', 'client half-closed', 'connection closed']),
    );
    for (const record of perConnection) expect(record.conn).toEqual(expect.any(Number));
  });
});

describe('idle timeout', () => {
  it('closes an idle connection while an active one stays open', async () => {
    server = await startEchoServer({ idleTimeout: 0.3 });
    const idle = await connect(server.port);
    const active = await connect(server.port);
    const idleClosed = once(idle, 'close');
    let echoes = 0;
    active.on('data', () => echoes++);
    // Activity well inside the timeout; the echoes prove the active connection is served throughout.
    const ticker = setInterval(() => active.write('.'), 50);
    try {
      await idleClosed;
      expect(active.destroyed).toBe(false);
      const before = echoes;
      await waitFor(() => echoes > before, { message: 'the active connection to keep echoing' });
      expect(server.logs.some((r) => r.msg === 'idle timeout')).toBe(true);
    } finally {
      clearInterval(ticker);
    }
  });

  it('never closes for idleness when the timeout is 0', async () => {
    server = await startEchoServer({ idleTimeout: 0 });
    const client = await connect(server.port);
    // A connection with a short timeout, on a second server, is the clock: once it is closed for
    // idleness, far more than its timeout has passed for the first.
    const reference = await startEchoServer({ idleTimeout: 0.1 });
    try {
      const probe = await connect(reference.port);
      await once(probe, 'close');
      expect(client.destroyed).toBe(false);
      expect((await roundTrip(client, 'alive')).toString()).toBe('alive');
    } finally {
      await reference.close();
    }
  });
});

describe('connection limit', () => {
  it('sends one JSON error line to a connection over the limit, closes it, and keeps serving the rest', async () => {
    server = await startEchoServer({ maxConnections: 2 });
    const a = await connect(server.port);
    const b = await connect(server.port);
    await roundTrip(a, 'a');
    await roundTrip(b, 'b');

    const over = await connect(server.port);
    const line = (await readToEnd(over)).toString();
    expect(line.endsWith('\n')).toBe(true);
    expect(line.split('\n')).toHaveLength(2);
    expect(JSON.parse(line)).toEqual({
      ok: false,
      error: { code: 'TOO_MANY_CONNECTIONS', message: expect.stringContaining('--max-connections') },
    });
    expect((await roundTrip(a, 'still a')).toString()).toBe('still a');
    expect(server.server.stats).toMatchObject({ connections: 2, connectionsRejected: 1 });

    // A freed slot is usable again.
    a.destroy();
    await waitFor(() => server!.server.stats.connections === 1, { message: 'the slot to be freed' });
    const c = await connect(server.port);
    expect((await roundTrip(c, 'c')).toString()).toBe('c');
  });
});

describe('close()', () => {
  it('leaves no handle or timer behind, ends clients with EOF, and frees the port at once', async () => {
    const watched = (info: string[]) => info.filter((type) => /TCP|Timeout|Timer/.test(type)).sort();
    // Sockets an earlier test destroyed release their handles a turn later: start from none.
    await waitFor(() => !watched(process.getActiveResourcesInfo()).some((type) => type.startsWith('TCP')), {
      message: "earlier tests' sockets to be released",
    });
    const before = watched(process.getActiveResourcesInfo());

    const s = await startEchoServer({ idleTimeout: 30 });
    const clients: net.Socket[] = await Promise.all([connect(s.port), connect(s.port), connect(s.port)]);
    await Promise.all(clients.map((client) => roundTrip(client, randomBytes(100_000))));
    const eofs = clients.map((client) => readToEnd(client));
    const closed = clients.map((client) => once(client, 'close'));

    const summary = await s.close();
    expect(summary).toMatchObject({ connections: 3, graceful: 3, destroyed: 0 });
    await Promise.all(eofs);
    await Promise.all(closed);
    expect(s.server.address).toBeNull();
    expect(watched(process.getActiveResourcesInfo())).toEqual(before);
    expect(await canBind(s.port)).toBe(true);
    expect(s.logs.at(-1)).toMatchObject({ msg: 'shutdown complete', connections: 3 });
  });

  it('is idempotent and counts bytes in and out', async () => {
    server = await startEchoServer();
    const client = await connect(server.port);
    await roundTrip(client, Buffer.alloc(1000));
    expect(server.server.stats).toMatchObject({ bytesIn: 1000, bytesOut: 1000, connectionsTotal: 1 });
    const first = server.close();
    expect(server.close()).toBe(first);
    await first;
    expect(server.server.stats).toMatchObject({ connections: 0, bytesIn: 1000, bytesOut: 1000 });
  });
});
