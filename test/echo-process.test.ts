import { afterEach, describe, expect, it } from 'vitest';
import { rssBytes, type SpawnedServer, spawnServer } from './helpers/cli.js';
import { canBind, connect, destroyAllSockets, readToEnd, roundTrip, waitForStall } from './helpers/net.js';

// The CLI as users run it: `node dist/cli.js echo|serve`, a real process, real signals.

let proc: SpawnedServer | undefined;

afterEach(async () => {
  destroyAllSockets();
  await proc?.kill();
  proc = undefined;
});

// Each command's own idea of a round trip: raw bytes for echo, a PING request for serve.
const PROBES = {
  echo: { send: 'ping\n', expect: 'ping\n' },
  serve: { send: '{"action":"PING"}\n', expect: '{"ok":true,"result":"PONG"}\n' },
};

describe.each(['echo', 'serve'] as const)('caretkv %s', (command) => {
  it.each(['SIGINT', 'SIGTERM'] as const)(
    'on %s ends clients with EOF, exits 0 within the grace period, and frees the port',
    async (signal) => {
      proc = await spawnServer([command, '--shutdown-grace', '10']);
      const clients = await Promise.all([connect(proc.port), connect(proc.port)]);
      const probe = PROBES[command];
      for (const client of clients)
        expect((await roundTrip(client, probe.send)).toString()).toBe(probe.expect);
      const eofs = clients.map((client) => readToEnd(client));

      proc.child.kill(signal);
      expect(await proc.exited).toEqual({ code: 0, signal: null });
      await Promise.all(eofs);
      const summary = proc.logs.find((r) => r.msg === 'shutdown complete');
      // Closed cleanly, not by the grace timer.
      expect(summary).toMatchObject({ connections: 2, graceful: 2, destroyed: 0 });
      expect(proc.logs.find((r) => r.msg === 'shutting down')).toMatchObject({ signal });
      expect(await canBind(proc.port)).toBe(true);
    },
  );

  // Issue 14.9: idle clients that never answer the server's FIN must not hold shutdown for the grace.
  it('on SIGTERM closes idle clients that never hang up as soon as their output is flushed', async () => {
    proc = await spawnServer([command, '--shutdown-grace', '60']);
    const clients = await Promise.all([connect(proc.port), connect(proc.port), connect(proc.port)]);
    const probe = PROBES[command];
    for (const client of clients) {
      // Half-open: the client never sends its own FIN, as some clients and proxies behave.
      client.allowHalfOpen = true;
      expect((await roundTrip(client, probe.send)).toString()).toBe(probe.expect);
    }
    const received = clients.map((client) => readToEnd(client, 30_000));

    const started = Date.now();
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    const elapsed = Date.now() - started;
    const tails = (await Promise.all(received)).map((b) => b.toString());
    if (command === 'serve') for (const tail of tails) expect(tail).toMatch(/"event":"shutdown"/);
    expect(proc.logs.find((r) => r.msg === 'shutdown complete')).toMatchObject({
      connections: 3,
      graceful: 3,
      destroyed: 0,
    });
    // Nothing was in flight: the exit must not wait for the clients (the socket linger is 10 s).
    expect(elapsed).toBeLessThan(5_000);
  });
});

describe('caretkv echo under load', () => {
  it('keeps RSS bounded when a client writes 100 MiB without reading', async () => {
    proc = await spawnServer(['echo']);
    const client = await connect(proc.port);
    const baseline = rssBytes(proc.pid);
    client.pause();

    const chunk = Buffer.alloc(1024 * 1024, 0xab);
    const total = 100 * chunk.length;
    for (let i = 0; i < 100; i++) client.write(chunk);
    // The server stops reading once its output to us backs up, so our writes stop moving.
    await waitForStall(() => client.writableLength, { done: () => client.writableLength === 0 });
    const stalled = client.writableLength;
    const rss = rssBytes(proc.pid);
    expect(stalled).toBeGreaterThan(total / 2);
    expect(rss).toBeLessThan(baseline + 64 * 1024 * 1024);

    // Not a hang: once we read, every byte comes back.
    let received = 0;
    let intact = true;
    await new Promise<void>((resolve, reject) => {
      client.on('data', (data: Buffer) => {
        received += data.length;
        if (data.some((byte) => byte !== 0xab)) intact = false;
        if (received === total) resolve();
      });
      client.on('error', reject);
      client.resume();
    });
    expect(intact).toBe(true);
  });

  it('exits at once on a second signal while shutdown waits for a client that is not reading', async () => {
    proc = await spawnServer(['echo', '--shutdown-grace', '600']);
    const client = await connect(proc.port);
    client.pause();
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 32; i++) client.write(chunk);
    await waitForStall(() => client.writableLength, { done: () => client.writableLength === 0 });

    proc.child.kill('SIGTERM');
    await proc.waitForLog((r) => r.msg === 'shutting down');
    proc.child.kill('SIGTERM');
    // Far inside the 600 s grace: the test timeout would catch a wait for it.
    expect(await proc.exited).toEqual({ code: 143, signal: null });
    expect(proc.logs.some((r) => r.msg === 'second signal during shutdown; exiting now')).toBe(true);
  });
});
