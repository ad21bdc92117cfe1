/**
 * Attacks from issue 14, replayed over real sockets: each `describe` is one finding of
 * docs/security.md's "Tested attacks" section and failed before its fix.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type AuthServer, LineClient, startAuthServer, users } from './auth-helpers.js';
import { runCli } from './helpers/cli.js';
import { waitFor } from './helpers/net.js';

const open: LineClient[] = [];
const servers: AuthServer[] = [];
async function client(server: AuthServer, host = '127.0.0.1'): Promise<LineClient> {
  const c = await LineClient.connect(server.port, host);
  open.push(c);
  return c;
}
async function start(
  file: Record<string, unknown>,
  flags: Record<string, unknown> = {},
): Promise<AuthServer> {
  const s = await startAuthServer(file, flags);
  servers.push(s);
  return s;
}
const external = Object.values(networkInterfaces())
  .flat()
  .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;

afterEach(async () => {
  for (const c of open.splice(0)) c.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('parallel AUTH guesses from one address (issue 14.1)', () => {
  it('counts attempts in flight: beyond the limit AUTH is RATE_LIMITED without checking the password', async () => {
    const server = await start({
      users: await users({ app: { password: 'right', categories: ['all'], read: ['>'], write: ['>'] } }),
      authFailureDelay: 0,
      authMaxFailures: 100,
      authMaxFailuresPerAddress: 5,
      authBlockSeconds: 60,
    });
    const guessers = await Promise.all(Array.from({ length: 39 }, () => client(server)));
    const last = await client(server);
    const witness = await client(server);
    // Both accepted before the guessing starts (a blocked address is refused at accept).
    for (const c of [last, witness]) expect(await c.request({ action: 'PING' })).toMatchObject({ ok: true });
    const answers = guessers.map((c) => c.request({ action: 'AUTH', user: 'app', password: 'wrong' }));
    // A round trip on another connection: the server has now read (and started) every guess above.
    expect(await witness.request({ action: 'PING' })).toMatchObject({ ok: true });
    const lastAnswer = await last.request({ action: 'AUTH', user: 'app', password: 'right' });

    const codes = (await Promise.all(answers)).map((a) => a.error?.code);
    expect(codes.filter((c) => c === 'AUTH_FAILED').length).toBeLessThanOrEqual(5);
    expect(codes.filter((c) => c === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(34);
    expect(lastAnswer.ok).toBe(false);
    expect(lastAnswer.error?.code).toBe('RATE_LIMITED');
    expect(server.server.auth?.stats.authFailures).toBeLessThanOrEqual(5);
  });
});

describe('user names outside the documented syntax (issue 14.4)', () => {
  const BAD_NAMES = ['$server', 'two words', 'new\nline', 'caf\u00e9', 'x'.repeat(65)];

  it.each(BAD_NAMES)('refuses to start with a user named %j', async (name) => {
    const dir = mkdtempSync(join(tmpdir(), 'caretkv-names-'));
    try {
      const file = join(dir, 'caretkv.json');
      const config = { users: await users({ [name]: { password: 'pw', categories: ['all'] } }) };
      writeFileSync(file, JSON.stringify(config));
      const run = await runCli(['serve', '--config', file, '--port', '0']);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toContain(`users[${JSON.stringify(name)}]: a user name is 1 to 64 characters`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a reload that adds one, keeping the users in force', async () => {
    const admin = { password: 'admin-pw', categories: ['all' as const], read: ['>'], write: ['>'] };
    const server = await start({ users: await users({ admin }) });
    const c = await client(server);
    expect((await c.request({ action: 'AUTH', user: 'admin', password: 'admin-pw' })).ok).toBe(true);

    server.setFile({ users: await users({ admin, $server: { ...admin, password: 'x' } }) });
    const reload = await c.request({ action: 'CONFIG', op: 'RELOAD' });
    expect(reload.ok).toBe(false);
    expect(reload.error?.message).toContain('users["$server"]: a user name is 1 to 64 characters');

    // The old users stay: `$server` cannot log in (and so never stamps `"from":"$server"`).
    const other = await client(server);
    expect((await other.request({ action: 'AUTH', user: '$server', password: 'x' })).error?.code).toBe(
      'AUTH_FAILED',
    );
    expect(await c.request({ action: 'SET', key: 'k', value: 1 })).toMatchObject({ ok: true });
  });
});

describe('removing the last user by reload (issue 14.5)', () => {
  it('tells the authenticated connection with a deauthenticated push', async () => {
    const app = { password: 'app-pw', categories: ['read' as const], read: ['app^>'] };
    const server = await start({ users: await users({ app }) });
    const c = await client(server);
    expect((await c.request({ action: 'AUTH', user: 'app', password: 'app-pw' })).ok).toBe(true);

    server.setFile({});
    await server.server.reload();
    await waitFor(() => c.pushes.length > 0, { message: 'the deauthenticated push' });
    expect(c.pushes).toEqual([
      {
        event: 'deauthenticated',
        message: expect.stringMatching(/user "app" was removed: the server now has no users/),
      },
    ]);
    // A loopback connection to a server without users is open, as a new one would be.
    expect(await c.request({ action: 'HELLO' })).toMatchObject({ ok: true, result: { user: null } });
  });
});

describe.runIf(external !== undefined)(
  `protected mode after a reload removes every user (issue 14.6, peer ${external ?? 'none'})`,
  () => {
    it('closes live non-loopback connections with PROTECTED_MODE, authenticated or not; loopback stays', async () => {
      const admin = { password: 'admin-pw', categories: ['all' as const], read: ['>'], write: ['>'] };
      const server = await start({ users: await users({ admin }) }, { host: '0.0.0.0' });
      const authed = await client(server, external!);
      expect((await authed.request({ action: 'AUTH', user: 'admin', password: 'admin-pw' })).ok).toBe(true);
      const anonymous = await client(server, external!);
      expect((await anonymous.request({ action: 'PING' })).ok).toBe(true);
      const local = await client(server);
      expect((await local.request({ action: 'AUTH', user: 'admin', password: 'admin-pw' })).ok).toBe(true);

      server.setFile({});
      await server.server.reload();
      for (const remote of [authed, anonymous]) {
        const line = await remote.next();
        expect(line.error?.code).toBe('PROTECTED_MODE');
        await remote.waitClosed();
      }
      // New remote connections are refused too, as before; the loopback one goes on.
      const late = await client(server, external!);
      expect((await late.next()).error?.code).toBe('PROTECTED_MODE');
      expect(await local.request({ action: 'SET', key: 'k', value: 1 })).toMatchObject({ ok: true });
    });
  },
);

describe('losing the pubsub category (issue 14.3)', () => {
  const admin = {
    password: 'admin-pw',
    categories: ['all' as const],
    read: ['>'],
    write: ['>'],
    publish: ['>'],
  };
  const app = {
    password: 'app-pw',
    categories: ['read' as const, 'write' as const, 'pubsub' as const],
    read: ['app^>'],
    write: ['app^>'],
    subscribe: ['news^>'],
  };

  async function subscribed(server: AuthServer, user: string, password: string): Promise<LineClient> {
    const c = await client(server);
    expect((await c.request({ action: 'AUTH', user, password })).ok).toBe(true);
    expect(await c.request({ action: 'SUBSCRIBE', channels: ['news^>'] })).toMatchObject({ ok: true });
    expect(await c.request({ action: 'OBSERVE', keys: ['app^>'] })).toMatchObject({ ok: true });
    return c;
  }

  it('a reload that removes it ends SUBSCRIBE and OBSERVE with a revoked push', async () => {
    const all = await users({ admin, app });
    const server = await start({ users: all });
    const c = await subscribed(server, 'app', 'app-pw');
    const boss = await client(server);
    expect((await boss.request({ action: 'AUTH', user: 'admin', password: 'admin-pw' })).ok).toBe(true);

    server.setFile({ users: { ...all, app: { ...all.app, categories: ['read', 'write'] } } });
    expect(await boss.request({ action: 'CONFIG', op: 'RELOAD' })).toMatchObject({ ok: true });
    await waitFor(() => c.pushes.length > 0, { message: 'the revoked push' });
    expect(c.pushes).toEqual([
      {
        event: 'revoked',
        channels: ['news^>'],
        keys: ['app^>'],
        reason: 'the server reloaded its configuration and the user may no longer hold these',
      },
    ]);
    // Nothing reaches it any more: no subscriber for the message, no change event for the write.
    expect(await boss.request({ action: 'PUBLISH', channel: 'news^1', message: 1 })).toEqual({
      ok: true,
      result: 0,
    });
    expect(await c.request({ action: 'SET', key: 'app^k', value: 'secret' })).toMatchObject({ ok: true });
    expect(await c.request({ action: 'PING' })).toMatchObject({ ok: true });
    expect(c.pushes).toHaveLength(1);
  });

  it('AUTH as a user without it ends what the connection held', async () => {
    const server = await start({
      users: await users({
        admin,
        app,
        reader: { password: 'reader-pw', categories: ['read'], read: ['>'] },
      }),
    });
    const c = await subscribed(server, 'app', 'app-pw');
    expect((await c.request({ action: 'AUTH', user: 'reader', password: 'reader-pw' })).ok).toBe(true);
    await waitFor(() => c.pushes.length > 0, { message: 'the revoked push' });
    expect(c.pushes).toEqual([
      {
        event: 'revoked',
        channels: ['news^>'],
        keys: ['app^>'],
        reason: 'the connection authenticated as user "reader", who may not hold these',
      },
    ]);
  });
});

describe('KEYS and NAMESPACES paging around hidden names (issue 14.2)', () => {
  const admin = { password: 'admin-pw', categories: ['all' as const], read: ['>'], write: ['>'] };
  // May read lk^a and lk^z, and keys below lk^ns^a and lk^ns^z: nothing else of lk.
  const peek = {
    password: 'peek-pw',
    categories: ['read' as const],
    read: ['lk^a', 'lk^z', 'lk^ns^a^>', 'lk^ns^z^>'],
  };
  const HIDDEN = ['hidden', 'hiddem', 'm', 'x1', 'zz'];

  /** Every page the attacker can ask for: `after` at and around each hidden name, limits 1 and 2. */
  function probes(): Record<string, unknown>[] {
    const afters = new Set<string | undefined>([undefined, '', '^', '^c1.AAAA', 'a', 'z', 'zzz']);
    for (const name of HIDDEN) {
      for (let i = 0; i <= name.length; i++) afters.add(name.slice(0, i));
      afters.add(`${name}\u0000`);
      afters.add(name.slice(0, -1) + String.fromCharCode(name.charCodeAt(name.length - 1) - 1));
    }
    const out: Record<string, unknown>[] = [];
    for (const after of afters) {
      for (const limit of [1, 2]) {
        out.push({ action: 'KEYS', namespace: 'lk', limit, ...(after !== undefined && { after }) });
        out.push({ action: 'NAMESPACES', namespace: 'lk^ns', limit, ...(after !== undefined && { after }) });
      }
    }
    return out;
  }

  async function answers(withHidden: boolean): Promise<string[]> {
    const server = await start({ users: await users({ admin, peek }) });
    const boss = await client(server);
    expect((await boss.request({ action: 'AUTH', user: 'admin', password: 'admin-pw' })).ok).toBe(true);
    const entries: Record<string, number> = { 'lk^a': 1, 'lk^z': 1, 'lk^ns^a^k': 1, 'lk^ns^z^k': 1 };
    if (withHidden)
      for (const name of HIDDEN) Object.assign(entries, { [`lk^${name}`]: 1, [`lk^ns^${name}^k`]: 1 });
    expect(await boss.request({ action: 'MSET', entries })).toMatchObject({ ok: true });

    const attacker = await client(server);
    expect((await attacker.request({ action: 'AUTH', user: 'peek', password: 'peek-pw' })).ok).toBe(true);
    const out: string[] = [];
    for (const probe of probes()) out.push(JSON.stringify([probe, await attacker.request(probe)]));
    return out;
  }

  it('answer every page exactly as if the hidden names did not exist', async () => {
    const without = await answers(false);
    const withHidden = await answers(true);
    expect(withHidden).toEqual(without);
    // And the pages are the visible names, in order, with a cursor only when more follow.
    expect(without).toContain(
      JSON.stringify([
        { action: 'KEYS', namespace: 'lk', limit: 1 },
        { ok: true, result: { keys: ['a'], next: 'a' } },
      ]),
    );
    expect(without).toContain(
      JSON.stringify([
        { action: 'KEYS', namespace: 'lk', limit: 1, after: 'a' },
        { ok: true, result: { keys: ['z'], next: null } },
      ]),
    );
  });
});

describe('requests queued behind a pending AUTH (issue 14.7)', () => {
  it('over twice the pre-auth line limit are read with backpressure, not refused as LINE_TOO_LONG', async () => {
    const server = await start({
      users: await users({ app: { password: 'app-pw', categories: ['all'], read: ['>'], write: ['>'] } }),
    });
    const c = await client(server);
    // 200 KiB of short lines behind the AUTH: far over 2 x the 64 KiB pre-auth line limit.
    const ping = `${JSON.stringify({ action: 'PING' })}\n`;
    const count = Math.ceil((200 * 1024) / ping.length);
    const auth = c.next();
    c.socket.write(
      `${JSON.stringify({ action: 'AUTH', user: 'app', password: 'app-pw' })}\n${ping.repeat(count)}`,
    );
    expect(await auth).toEqual({ ok: true, result: { user: 'app' } });
    const answers = await Promise.all(Array.from({ length: count }, () => c.next()));
    expect(answers.every((a) => a.ok === true && a.result === 'PONG')).toBe(true);
    expect(c.closed).toBe(false);
  });
});

describe('unauthenticated connections holding slots (issue 14.7)', () => {
  it('closes a connection that does not authenticate within --auth-timeout, telling it why', async () => {
    const server = await start(
      { users: await users({ app: { password: 'app-pw', categories: ['read'], read: ['>'] } }) },
      { authTimeout: '0.3' },
    );
    const idle = await client(server);
    const authed = await client(server);
    expect((await authed.request({ action: 'AUTH', user: 'app', password: 'app-pw' })).ok).toBe(true);
    // PING runs before AUTH but does not stop the clock.
    expect((await idle.request({ action: 'PING' })).ok).toBe(true);
    const told = await idle.next();
    expect(told.error?.code).toBe('AUTH_TIMEOUT');
    expect(told.error?.message).toMatch(/--auth-timeout/);
    await idle.waitClosed();
    // Connected at the same time, but authenticated: not affected.
    expect(await authed.request({ action: 'PING' })).toMatchObject({ ok: true });
  });

  it.runIf(external !== undefined)(
    `refuses connections from one address over --max-connections-per-address (peer ${external ?? 'none'}); loopback is exempt`,
    async () => {
      const server = await start(
        { users: await users({ app: { password: 'app-pw', categories: ['read'], read: ['>'] } }) },
        { host: '0.0.0.0', maxConnectionsPerAddress: '2' },
      );
      const first = await client(server, external!);
      const second = await client(server, external!);
      for (const c of [first, second])
        expect(await c.request({ action: 'PING' })).toMatchObject({ ok: true });
      const third = await client(server, external!);
      const refused = await third.next();
      expect(refused.error?.code).toBe('TOO_MANY_CONNECTIONS');
      expect(refused.error?.message).toMatch(/--max-connections-per-address/);
      await third.waitClosed();
      // A slot freed is usable again; loopback clients never count.
      first.destroy();
      await waitFor(
        async () => {
          const again = await client(server, external!);
          const answer = await again.request({ action: 'PING' });
          return answer.ok === true;
        },
        { message: 'the freed slot' },
      );
      const locals = await Promise.all([1, 2, 3, 4].map(() => client(server)));
      for (const c of locals) expect(await c.request({ action: 'PING' })).toMatchObject({ ok: true });
    },
  );
});
