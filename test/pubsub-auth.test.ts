/**
 * Pub/sub under authentication, over real sockets: channel and key patterns per user, the `from`
 * stamp, `$` channels closed to every user, and a reload revoking a live subscription.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type AuthServer, LineClient, startAuthServer, users } from './auth-helpers.js';
import { waitFor } from './helpers/net.js';

const open: LineClient[] = [];
const servers: AuthServer[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

const USERS = {
  admin: {
    password: 'admin-pw',
    categories: ['all' as const],
    read: ['>'],
    write: ['>'],
    subscribe: ['>'],
    publish: ['>'],
  },
  app: {
    password: 'app-pw',
    categories: ['read' as const, 'write' as const, 'pubsub' as const],
    read: ['app^>'],
    write: ['app^>'],
    subscribe: ['news^>'],
    publish: ['news^app^*'],
  },
  quiet: { password: 'quiet-pw', categories: ['all' as const], read: ['>'], write: ['>'] },
};

async function start(): Promise<{ server: AuthServer; all: Awaited<ReturnType<typeof users>> }> {
  const all = await users(USERS);
  const server = await startAuthServer({ users: all });
  servers.push(server);
  return { server, all };
}

async function as(server: AuthServer, user: string, password: string): Promise<LineClient> {
  const c = await LineClient.connect(server.port);
  open.push(c);
  expect(await c.request({ action: 'AUTH', user, password })).toEqual({ ok: true, result: { user } });
  return c;
}

describe('pub/sub permissions', () => {
  it('checks channel and key patterns per user and stamps messages with the user', async () => {
    const { server } = await start();
    const app = await as(server, 'app', 'app-pw');
    const admin = await as(server, 'admin', 'admin-pw');
    const quiet = await as(server, 'quiet', 'quiet-pw');

    const denied = await app.request({ action: 'SUBSCRIBE', channels: ['news^>', 'alerts^>'] });
    expect(denied.error).toEqual({
      code: 'NOPERM',
      message: 'user "app" may not SUBSCRIBE channel pattern "alerts^>"',
    });
    expect(await app.request({ action: 'SUBSCRIBE', channels: ['news^>'] })).toEqual({ ok: true, result: 1 });
    expect((await app.request({ action: 'OBSERVE', keys: ['other^>'] })).error?.code).toBe('NOPERM');
    expect(await app.request({ action: 'OBSERVE', keys: ['app^>'] })).toEqual({ ok: true, result: 1 });
    expect((await app.request({ action: 'PUBLISH', channel: 'news^eu', message: 1 })).error).toEqual({
      code: 'NOPERM',
      message: 'user "app" may not PUBLISH channel "news^eu"',
    });
    // Channels are deny-by-default: a user with every category but no channel lists gets none.
    expect((await quiet.request({ action: 'SUBSCRIBE', channels: ['news^>'] })).error?.code).toBe('NOPERM');
    expect((await quiet.request({ action: 'PUBLISH', channel: 'news^x', message: 1 })).error?.code).toBe(
      'NOPERM',
    );
    // $ channels are the server's, whoever asks.
    expect(
      (await admin.request({ action: 'PUBLISH', channel: '$sys^shutdown', message: 1 })).error?.code,
    ).toBe('NOPERM');

    expect(await app.request({ action: 'PUBLISH', channel: 'news^app^1', message: 'own' })).toEqual({
      ok: true,
      result: 1,
    });
    expect(await admin.request({ action: 'PUBLISH', channel: 'news^eu', message: 'boss' })).toEqual({
      ok: true,
      result: 1,
    });
    await waitFor(() => app.pushes.length === 2, { message: 'two messages' });
    expect(app.pushes.map((p) => [p.message, p.from])).toEqual([
      ['own', 'app'],
      ['boss', 'admin'],
    ]);
  });

  it('a reload ends subscriptions the user may no longer hold, with a push saying why', async () => {
    const { server, all } = await start();
    const app = await as(server, 'app', 'app-pw');
    const admin = await as(server, 'admin', 'admin-pw');
    await app.request({ action: 'SUBSCRIBE', channels: ['news^>'] });
    await app.request({ action: 'OBSERVE', keys: ['app^>'] });

    server.setFile({ users: { ...all, app: { ...all.app, subscribe: ['news^eu^>'] } } });
    expect(await admin.request({ action: 'CONFIG', op: 'RELOAD' })).toMatchObject({ ok: true });
    await waitFor(() => app.pushes.length > 0, { message: 'the revoked push' });
    expect(app.pushes).toEqual([
      {
        event: 'revoked',
        channels: ['news^>'],
        keys: [],
        reason: 'the server reloaded its configuration and the user may no longer hold these',
      },
    ]);
    expect(await admin.request({ action: 'PUBLISH', channel: 'news^eu^1', message: 1 })).toEqual({
      ok: true,
      result: 0,
    });
    // The observation the user may still hold goes on.
    await admin.request({ action: 'SET', key: 'app^k', value: 2 });
    await waitFor(() => app.pushes.length === 2, { message: 'the change push' });
    expect(app.pushes[1]).toMatchObject({ event: 'change', key: 'app^k', op: 'set', value: 2 });
  });

  it('an open server that gains users ends the subscriptions of its now unauthenticated connections', async () => {
    const server = await startAuthServer({});
    servers.push(server);
    const anon = await LineClient.connect(server.port);
    open.push(anon);
    expect(await anon.request({ action: 'SUBSCRIBE', channels: ['news^>'] })).toEqual({
      ok: true,
      result: 1,
    });
    expect(await anon.request({ action: 'OBSERVE', keys: ['app^>'] })).toEqual({ ok: true, result: 1 });

    server.setFile({ users: await users({ admin: USERS.admin }) });
    await server.server.reload();
    await waitFor(() => anon.pushes.some((p) => p.event === 'revoked'), { message: 'the revoked push' });
    expect(anon.pushes).toEqual([
      expect.objectContaining({ event: 'deauthenticated' }),
      {
        event: 'revoked',
        channels: ['news^>'],
        keys: ['app^>'],
        reason: 'the connection is no longer authenticated',
      },
    ]);
    // Nothing reaches it any more: not messages, not key changes.
    const admin = await as(server, 'admin', 'admin-pw');
    expect(await admin.request({ action: 'PUBLISH', channel: 'news^eu', message: 1 })).toEqual({
      ok: true,
      result: 0,
    });
    expect(await admin.request({ action: 'SET', key: 'app^k', value: 1 })).toMatchObject({ ok: true });
    expect((await anon.request({ action: 'PING' })).ok).toBe(true);
    expect(anon.pushes).toHaveLength(2);
  });
});
