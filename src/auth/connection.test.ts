/**
 * The hooks pub/sub calls (canSubscribe, canPublish, canObserve, canRead, userName) and the
 * permissions-changed event a reload sends, checked on the auth state directly: the wire tests for
 * SUBSCRIBE/PUBLISH/OBSERVE come once those commands are wired into the table.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { defaultCommandTable } from '../commands/index.js';
import type { Connection } from '../transport/types.js';
import { Authority } from './authority.js';
import type { PermissionsChange } from './connection.js';
import { hashPassword } from './password.js';
import type { UsersConfig } from './users.js';

function fakeConn(): Connection & { written: string[] } {
  const written: string[] = [];
  return {
    id: 1,
    remoteAddress: '127.0.0.1',
    remotePort: 1,
    log: pino({ level: 'silent' }),
    write: (data: string | Uint8Array) => void written.push(String(data)),
    pendingBytes: 0,
    congested: false,
    notifyWhenFlushed() {},
    pauseInput() {},
    resumeInput() {},
    end() {},
    destroy() {},
    idleExempt: false,
    closed: false,
    written,
  };
}

async function setup(users: UsersConfig | undefined) {
  const authority = new Authority({
    table: defaultCommandTable(),
    users,
    log: pino({ level: 'silent' }),
    maxLineBytes: 1 << 20,
    preAuthMaxLineBytes: 1024,
    protectedMode: true,
    authFailureDelay: 0,
    authMaxFailures: 5,
    authMaxFailuresPerAddress: 100,
    authBlockSeconds: 60,
  });
  const conn = fakeConn();
  return { authority, conn, auth: authority.attach(conn) };
}

const pw = await hashPassword('pw');
const APP: UsersConfig = {
  app: {
    password: pw,
    categories: ['pubsub', 'read'],
    read: ['app^>'],
    subscribe: ['news^>', 'alerts^*'],
    publish: ['news^app^*'],
  },
  quiet: { password: pw, categories: ['all'], read: ['>'], write: ['>'] },
};

describe('ConnectionAuth hooks', () => {
  it('channel checks: patterns must be covered, publishing needs a match, $-channels never publishable', async () => {
    const { auth } = await setup(APP);
    expect(auth.canSubscribe('news^>')).toBe(false);
    expect(await auth.authenticate('app', 'pw')).toEqual({ user: 'app' });
    expect(auth.userName).toBe('app');
    expect(auth.canSubscribe('news^>')).toBe(true);
    expect(auth.canSubscribe('news^eu^*')).toBe(true);
    expect(auth.canSubscribe('alerts^fire')).toBe(true);
    expect(auth.canSubscribe('alerts^>')).toBe(false);
    expect(auth.canSubscribe('>')).toBe(false);
    expect(auth.canSubscribe('$sys^>')).toBe(false);
    expect(auth.canPublish('news^app^x')).toBe(true);
    expect(auth.canPublish('news^other^x')).toBe(false);
    expect(auth.canPublish('$sys^shutdown')).toBe(false);
    expect(auth.canObserve('app^users^>')).toBe(true);
    expect(auth.canObserve('>')).toBe(false);
    expect(auth.canRead('app^x')).toBe(true);
    expect(auth.canWrite('app^x')).toBe(false);
    expect(auth.deny('PUBLISH', 'channel "news^other^x"').message).toBe(
      'user "app" may not PUBLISH channel "news^other^x"',
    );
  });

  it('channels are deny-by-default, even for a user allowed every category and key', async () => {
    const { auth } = await setup(APP);
    await auth.authenticate('quiet', 'pw');
    expect(auth.restricted).toBe(false);
    expect(auth.canRead('any^key')).toBe(true);
    expect(auth.canSubscribe('news^>')).toBe(false);
    expect(auth.canPublish('news')).toBe(false);
  });

  it('an open server allows every channel but $-channels for publishing', async () => {
    const { auth } = await setup(undefined);
    expect(auth.restricted).toBe(false);
    expect(auth.canSubscribe('>')).toBe(true);
    expect(auth.canPublish('news')).toBe(true);
    expect(auth.canPublish('$sys^shutdown')).toBe(false);
    expect(auth.userName).toBeNull();
  });

  it('emits permissions-changed on AUTH and on reload, after which the hooks answer anew', async () => {
    const { authority, auth, conn } = await setup(APP);
    const changes: PermissionsChange[] = [];
    auth.on('permissions-changed', (change) => {
      // What pub/sub does: re-check each subscription with the hooks.
      changes.push({ ...change, stillAllowed: auth.canSubscribe('news^>') } as PermissionsChange);
    });
    await auth.authenticate('app', 'pw');
    authority.reload({ users: { ...APP, app: { ...APP.app!, subscribe: ['alerts^*'] } } });
    authority.reload({ users: { quiet: APP.quiet! } });
    expect(changes).toEqual([
      { reason: 'authenticated', user: 'app', stillAllowed: true },
      { reason: 'reload', user: 'app', stillAllowed: false },
      { reason: 'deauthenticated', user: null, stillAllowed: false },
    ]);
    expect(conn.written.map((line) => JSON.parse(line))).toEqual([
      { event: 'deauthenticated', message: 'user "app" was removed: send AUTH again' },
    ]);
  });

  it('forgets a disposed connection: no events, not reached by reloads', async () => {
    const { authority, auth } = await setup(APP);
    let events = 0;
    auth.on('permissions-changed', () => events++);
    expect(authority.connections).toBe(1);
    auth.dispose();
    expect(authority.connections).toBe(0);
    authority.reload({ users: APP });
    expect(events).toBe(0);
  });
});
