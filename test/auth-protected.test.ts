/**
 * Protected mode over real sockets. A refused peer must be non-loopback, so the test binds to an
 * address of one of this machine's interfaces; the peer check itself is unit-tested in
 * src/auth/address.test.ts, which covers machines without one.
 */
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { CaretClient } from '../src/client/client.js';
import { type AuthServer, LineClient, startAuthServer, users } from './auth-helpers.js';

const external = Object.values(networkInterfaces())
  .flat()
  .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;

const servers: AuthServer[] = [];
const clients: LineClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});
async function start(file: Record<string, unknown>, flags: Record<string, unknown>) {
  const s = await startAuthServer(file, flags);
  servers.push(s);
  return s;
}
async function connect(port: number, host: string) {
  const c = await LineClient.connect(port, host);
  clients.push(c);
  return c;
}

describe.runIf(external !== undefined)(`protected mode (peer ${external ?? 'none'})`, () => {
  it('refuses a non-loopback client with one line saying what to do, serves loopback, warns at start', async () => {
    const server = await start({}, { host: '0.0.0.0' });
    const remote = await connect(server.port, external!);
    const line = await remote.next();
    expect(line.ok).toBe(false);
    expect(line.error?.code).toBe('PROTECTED_MODE');
    expect(line.error?.message).toMatch(/caretkv passwd/);
    expect(line.error?.message).toMatch(/--protected-mode no/);
    await remote.waitClosed();

    const local = await connect(server.port, '127.0.0.1');
    expect(await local.request({ action: 'PING' })).toEqual({ ok: true, result: 'PONG' });
    expect(server.logs.some((r) => r.level === 40 && /protected mode/.test(r.msg))).toBe(true);

    // The client library reports the server's reason, not a protocol error.
    // (lazyConnect: the PING is written as the connection comes up, so the refusal answers it.)
    const db = new CaretClient({ host: external!, port: server.port, lazyConnect: true });
    try {
      await expect(db.ping()).rejects.toMatchObject({ code: 'PROTECTED_MODE' });
    } finally {
      db.destroy();
    }
  });

  it('lets the client in once users are configured (then AUTH is what protects)', async () => {
    const server = await start(
      { users: await users({ a: { password: 'pw', categories: ['read'] } }) },
      { host: '0.0.0.0' },
    );
    const remote = await connect(server.port, external!);
    expect((await remote.request({ action: 'GET', key: 'k' })).error?.code).toBe('NOAUTH');
  });

  it('--protected-mode no lets everyone in, with a warning at start', async () => {
    const server = await start({}, { host: '0.0.0.0', protectedMode: 'no' });
    const remote = await connect(server.port, external!);
    expect(await remote.request({ action: 'PING' })).toEqual({ ok: true, result: 'PONG' });
    expect(server.logs.find((r) => r.msg.startsWith('protected mode is off'))?.level).toBe(40);
  });
});

describe('protected mode on a loopback bind', () => {
  it('never gets in the way (every peer is loopback) and logs no warning', async () => {
    const server = await start({}, {});
    const local = await connect(server.port, '127.0.0.1');
    expect(await local.request({ action: 'PING' })).toEqual({ ok: true, result: 'PONG' });
    expect(server.logs.some((r) => /protected mode/.test(r.msg))).toBe(false);
  });
});
