/**
 * Authentication and permissions over real sockets: every allow and deny path of docs/security.md.
 */
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultCommandTable } from '../src/commands/index.js';
import { type AuthServer, LineClient, startAuthServer, users } from './auth-helpers.js';
import { waitFor } from './helpers/net.js';

const open: LineClient[] = [];
async function client(server: AuthServer, host = '127.0.0.1'): Promise<LineClient> {
  const c = await LineClient.connect(server.port, host);
  open.push(c);
  return c;
}
async function as(server: AuthServer, user: string, password: string): Promise<LineClient> {
  const c = await client(server);
  const answer = await c.request({ action: 'AUTH', user, password });
  expect(answer).toEqual({ ok: true, result: { user } });
  return c;
}
afterEach(() => {
  for (const c of open.splice(0)) c.destroy();
});

const USERS = {
  admin: { password: 'admin-pw', categories: ['all' as const], read: ['>'], write: ['>'] },
  app: {
    password: 'app-pw',
    categories: ['read' as const, 'write' as const, 'pubsub' as const],
    read: ['app^>', 'shared^*', 'mix^pub'],
    write: ['app^>'],
    subscribe: ['news^>'],
    publish: ['news^app^*'],
  },
  reader: { password: 'reader-pw', categories: ['read' as const], read: ['>'] },
};

describe('authentication', () => {
  let server: AuthServer;
  beforeAll(async () => {
    server = await startAuthServer(
      { users: await users(USERS), authFailureDelay: 0.05, authMaxFailures: 3, preAuthMaxLineBytes: 1024 },
      {},
    );
  });
  afterAll(() => server.close());

  it('refuses everything but PING, HELLO and AUTH before AUTH', async () => {
    const c = await client(server);
    expect(await c.request({ action: 'PING' })).toEqual({ ok: true, result: 'PONG' });
    expect(await c.request({ action: 'HELLO', id: 1 })).toEqual({
      id: 1,
      ok: true,
      result: { server: 'caretkv', version: expect.any(String), protocol: 1, authRequired: true, user: null },
    });
    for (const req of [
      { action: 'GET', key: 'app^x' },
      { action: 'SET', key: 'app^x', value: 1 },
      { action: 'ECHO', value: 1 },
      { action: 'HELP' },
      { action: 'INFO' },
      { action: 'KEYS' },
      { action: 'CONFIG', op: 'RELOAD' },
    ]) {
      const answer = await c.request(req);
      expect(answer.error?.code, req.action).toBe('NOAUTH');
      expect(answer.error?.message).toMatch(/AUTH/);
    }
  });

  // Issue 14.7: the server, the NOAUTH message and both documents name the same commands.
  it('names in the NOAUTH message and the docs exactly the commands that run before AUTH', async () => {
    const before = defaultCommandTable()
      .list.filter((c) => c.noAuth)
      .map((c) => c.name);
    expect(before.sort()).toEqual(['AUTH', 'HELLO', 'PING']);
    const c = await client(server);
    const refused = await c.request({ action: 'HELP' });
    expect(refused.error?.message).toContain('only PING, HELLO and AUTH run');
    const protocol = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8');
    const security = readFileSync(new URL('../docs/security.md', import.meta.url), 'utf8');
    expect(protocol).toContain('only `PING`, `HELLO` and `AUTH` run');
    expect(security).toContain('`PING`, `HELLO` and `AUTH` run');
    expect(`${protocol}\n${security}`).not.toMatch(/`HELP` and `AUTH` run|HELP and AUTH run/);
  });

  it('binds the user on AUTH; HELLO then names it', async () => {
    const c = await as(server, 'app', 'app-pw');
    expect((await c.request({ action: 'HELLO' })).result).toMatchObject({ authRequired: true, user: 'app' });
    expect(await c.request({ action: 'SET', key: 'app^x', value: 1 })).toEqual({ ok: true, result: true });
  });

  it('runs requests pipelined behind an AUTH only after it succeeded', async () => {
    const c = await client(server);
    const lines = [c.next(), c.next(), c.next()];
    c.socket.write(
      `${JSON.stringify({ action: 'AUTH', user: 'app', password: 'app-pw' })}\n` +
        `${JSON.stringify({ action: 'SET', key: 'app^piped', value: 7 })}\n` +
        `${JSON.stringify({ action: 'GET', key: 'app^piped' })}\n`,
    );
    expect(await Promise.all(lines)).toEqual([
      { ok: true, result: { user: 'app' } },
      { ok: true, result: true },
      { ok: true, result: 7 },
    ]);
  });

  it('keeps the line limit small until AUTH succeeds', async () => {
    const c = await client(server);
    const big = { action: 'ECHO', value: 'x'.repeat(2000) };
    const before = await c.request(big);
    expect(before.error?.code).toBe('LINE_TOO_LONG');
    expect(before.error?.message).toMatch(/pre-auth-max-line-bytes/);
    expect(await c.request({ action: 'AUTH', user: 'app', password: 'app-pw' })).toMatchObject({ ok: true });
    expect(await c.request(big)).toEqual({ ok: true, result: big.value });
  });

  it('holds back an unauthenticated flood behind its AUTH, then answers it in order', async () => {
    const c = await client(server);
    const failed = c.request({ action: 'AUTH', user: 'app', password: 'wrong' });
    // Many short lines: each under the limit, together far over what an unauthenticated client may
    // park. Reading pauses until the AUTH is answered; then each line runs (NOAUTH: it failed).
    const line = `${JSON.stringify({ action: 'INFO' })}\n`;
    const count = Math.ceil((64 * 1024) / line.length);
    c.socket.write(line.repeat(count));
    expect((await failed).error?.code).toBe('AUTH_FAILED');
    const answers = await Promise.all(Array.from({ length: count }, () => c.next()));
    expect(answers.every((a) => a.error?.code === 'NOAUTH')).toBe(true);
    expect(c.closed).toBe(false);
  });

  it('answers unknown users and wrong passwords alike, slowed, and closes after the limit', async () => {
    const c = await client(server);
    const started = performance.now();
    const unknown = await c.request({ action: 'AUTH', user: 'nobody', password: 'x' });
    const firstDelay = performance.now() - started;
    const wrong = await c.request({ action: 'AUTH', user: 'app', password: 'x' });
    expect(unknown.error).toEqual(wrong.error);
    expect(unknown.error?.code).toBe('AUTH_FAILED');
    // A lower bound only: the answer waited at least the configured 50 ms (never an upper bound).
    expect(firstDelay).toBeGreaterThanOrEqual(45);
    const third = await c.request({ action: 'AUTH', user: 'app', password: 'y' });
    expect(third.error?.code).toBe('AUTH_FAILED');
    expect(third.error?.message).toMatch(/closing the connection/);
    await c.waitClosed();
    const failures = server.logs.filter((r) => r.msg === 'authentication failed');
    expect(failures.length).toBeGreaterThanOrEqual(3);
    expect(failures.map((r) => r.user)).toContain('nobody');
    // The password never reaches the log.
    expect(JSON.stringify(server.logs)).not.toMatch(/"(x|y|app-pw|wrong)"/);
  });

  it('a failed AUTH keeps the user bound before it', async () => {
    const c = await as(server, 'app', 'app-pw');
    expect((await c.request({ action: 'AUTH', user: 'admin', password: 'nope' })).error?.code).toBe(
      'AUTH_FAILED',
    );
    expect((await c.request({ action: 'HELLO' })).result).toMatchObject({ user: 'app' });
  });
});

describe('per-address limiting', () => {
  let server: AuthServer;
  beforeAll(async () => {
    server = await startAuthServer({
      users: await users({ app: USERS.app }),
      authFailureDelay: 0,
      authMaxFailures: 100,
      authMaxFailuresPerAddress: 3,
      authBlockSeconds: 60,
    });
  });
  afterAll(() => server.close());

  it('refuses an address after too many failures across connections, even with the right password', async () => {
    for (let i = 0; i < 2; i++) {
      const c = await client(server);
      expect((await c.request({ action: 'AUTH', user: 'app', password: 'bad' })).error?.code).toBe(
        'AUTH_FAILED',
      );
    }
    const third = await client(server);
    expect((await third.request({ action: 'AUTH', user: 'app', password: 'bad' })).error?.message).toMatch(
      /closing the connection/,
    );
    await third.waitClosed();

    const refused = await client(server);
    const line = await refused.next();
    expect(line.error?.code).toBe('RATE_LIMITED');
    expect(line.error?.message).toMatch(/refused for another \d+ s/);
    await refused.waitClosed();
  });
});

describe('permissions', () => {
  let server: AuthServer;
  let admin: LineClient;
  let app: LineClient;
  let reader: LineClient;
  beforeAll(async () => {
    server = await startAuthServer({ users: await users(USERS) });
    admin = await as(server, 'admin', 'admin-pw');
    const seed = {
      'app^a': 1,
      'app^b^c': 2,
      'shared^s': 3,
      'shared^deep^x': 4,
      'mix^hidden': 5,
      'mix^pub': 6,
      'secret^k': 7,
    };
    expect(await admin.request({ action: 'MSET', entries: seed })).toEqual({ ok: true, result: true });
    app = await as(server, 'app', 'app-pw');
    reader = await as(server, 'reader', 'reader-pw');
    // Kept across the tests of this block.
    open.splice(0);
  });
  afterAll(async () => {
    for (const c of [admin, app, reader]) c.destroy();
    await server.close();
  });

  it('reads and writes keys by pattern, naming action and key on refusal', async () => {
    expect(await app.request({ action: 'GET', key: 'app^a' })).toEqual({ ok: true, result: 1 });
    expect(await app.request({ action: 'GET', namespace: 'app', key: 'b^c' })).toEqual({
      ok: true,
      result: 2,
    });
    expect(await app.request({ action: 'GET', key: '^shared^s' })).toEqual({ ok: true, result: 3 });
    const secret = await app.request({ action: 'GET', key: 'secret^k' });
    expect(secret.error).toEqual({ code: 'NOPERM', message: expect.stringMatching(/GET key "secret\^k"/) });
    // `*` is exactly one segment.
    expect((await app.request({ action: 'GET', key: 'shared^deep^x' })).error?.code).toBe('NOPERM');
    // Readable is not writable.
    const write = await app.request({ action: 'SET', key: 'shared^s', value: 0 });
    expect(write.error?.message).toMatch(/SET key "shared\^s" \(no write permission\)/);
    for (const action of ['EXISTS', 'TTL']) {
      expect((await app.request({ action, key: 'secret^k' })).error?.code, action).toBe('NOPERM');
    }
    for (const req of [
      { action: 'INCR', key: 'shared^n' },
      { action: 'DEL', key: 'shared^s' },
      { action: 'EXPIRE', key: 'shared^s', ttl: 1000 },
      { action: 'CAS', key: 'shared^s', expected: 3, value: 4 },
    ]) {
      expect((await app.request(req)).error?.code, req.action).toBe('NOPERM');
    }
    expect(await app.request({ action: 'INCR', key: 'app^n' })).toEqual({ ok: true, result: 1 });
    // A malformed key is still BAD_KEY (it touches nothing).
    expect((await app.request({ action: 'GET', key: 'a^^b' })).error?.code).toBe('BAD_KEY');
  });

  it('checks every key of MGET and MSET; a refused MSET writes nothing', async () => {
    expect((await app.request({ action: 'MGET', keys: ['app^a', 'secret^k'] })).error?.message).toMatch(
      /MGET key "secret\^k"/,
    );
    expect(await app.request({ action: 'MGET', keys: ['app^a', 'shared^s'] })).toEqual({
      ok: true,
      result: { 'app^a': 1, 'shared^s': 3 },
    });
    const mset = await app.request({ action: 'MSET', entries: { 'app^new': 1, 'secret^k': 0 } });
    expect(mset.error?.message).toMatch(/MSET key "secret\^k"/);
    expect((await admin.request({ action: 'GET', key: 'app^new' })).error?.code).toBe('KEY_NOT_FOUND');
    expect(await admin.request({ action: 'GET', key: 'secret^k' })).toEqual({ ok: true, result: 7 });
  });

  it('refuses whole categories: write for a reader, namespace and server admin for an app', async () => {
    const set = await reader.request({ action: 'SET', key: 'x', value: 1 });
    expect(set.error).toEqual({ code: 'NOPERM', message: expect.stringMatching(/run SET .*"write"/) });
    expect(await reader.request({ action: 'GET', key: 'secret^k' })).toEqual({ ok: true, result: 7 });
    expect((await app.request({ action: 'DROP', namespace: 'app' })).error?.message).toMatch(/"namespace"/);
    expect((await app.request({ action: 'INFO' })).error?.message).toMatch(/"admin"/);
    expect((await app.request({ action: 'CONFIG', op: 'RELOAD' })).error?.code).toBe('NOPERM');
    // Commands with no category (ECHO) run for any authenticated user.
    expect(await reader.request({ action: 'ECHO', value: 1 })).toEqual({ ok: true, result: 1 });
  });

  it('lists only what the user may read, without leaking hidden names through the cursor', async () => {
    expect(await app.request({ action: 'KEYS', namespace: 'mix' })).toEqual({
      ok: true,
      result: { keys: ['pub'], next: null },
    });
    // The hidden name before `pub` is scanned over: a full page, and no cursor since nothing
    // visible follows (see test/security-attacks.test.ts for the probing attack).
    expect(await app.request({ action: 'KEYS', namespace: 'mix', limit: 1 })).toEqual({
      ok: true,
      result: { keys: ['pub'], next: null },
    });
    expect(await app.request({ action: 'KEYS', namespace: 'mix', limit: 1, after: 'pub' })).toEqual({
      ok: true,
      result: { keys: [], next: null },
    });
    expect(await app.request({ action: 'NAMESPACES' })).toEqual({
      ok: true,
      result: { namespaces: ['app', 'mix', 'shared'], next: null },
    });
    expect(await app.request({ action: 'NAMESPACES', namespace: 'shared' })).toEqual({
      ok: true,
      result: { namespaces: [], next: null },
    });
    expect(await admin.request({ action: 'NAMESPACES' })).toEqual({
      ok: true,
      result: { namespaces: ['app', 'mix', 'secret', 'shared'], next: null },
    });
  });

  it('COUNT needs read permission on the whole subtree', async () => {
    expect(await app.request({ action: 'COUNT', namespace: 'app' })).toMatchObject({ ok: true });
    expect((await app.request({ action: 'COUNT', namespace: 'mix' })).error?.message).toMatch(
      /COUNT namespace "mix"/,
    );
    expect((await app.request({ action: 'COUNT' })).error?.code).toBe('NOPERM');
    expect(await reader.request({ action: 'COUNT' })).toEqual({ ok: true, result: expect.any(Number) });
  });

  it('counts refusals in INFO', async () => {
    const info = await admin.request({ action: 'INFO' });
    const byCode = (info.result as { errors: { byCode: Record<string, number> } }).errors.byCode;
    expect(byCode.NOPERM).toBeGreaterThan(5);
  });
});

describe('reload', () => {
  it('applies new users and permissions to live connections (CONFIG RELOAD)', async () => {
    const all = await users(USERS);
    const server = await startAuthServer({ users: all });
    try {
      const admin = await as(server, 'admin', 'admin-pw');
      const app = await as(server, 'app', 'app-pw');
      const reader = await as(server, 'reader', 'reader-pw');
      expect(await app.request({ action: 'SET', key: 'app^k', value: 1 })).toMatchObject({ ok: true });

      // app is removed, reader may now read only pub^>.
      server.setFile({ users: { admin: all.admin, reader: { ...all.reader, read: ['pub^>'] } } });
      expect(await admin.request({ action: 'CONFIG', op: 'RELOAD' })).toEqual({
        ok: true,
        result: { users: 2, tls: false, restartNeeded: [] },
      });
      await waitFor(() => app.pushes.length > 0, { message: 'the deauthenticated push' });
      expect(app.pushes[0]).toEqual({
        event: 'deauthenticated',
        message: expect.stringMatching(/"app" was removed/),
      });
      expect((await app.request({ action: 'GET', key: 'app^k' })).error?.code).toBe('NOAUTH');
      expect((await app.request({ action: 'AUTH', user: 'app', password: 'app-pw' })).error?.code).toBe(
        'AUTH_FAILED',
      );
      expect((await reader.request({ action: 'GET', key: 'app^k' })).error?.code).toBe('NOPERM');
      expect(reader.pushes).toEqual([]);

      // A bad file changes nothing and says why.
      server.setFile({ users: { admin: { ...all.admin, password: 'plain' } } });
      const bad = await admin.request({ action: 'CONFIG', op: 'RELOAD' });
      expect(bad.error).toEqual({
        code: 'CONFIG_ERROR',
        message: expect.stringMatching(/users\.admin\.password/),
      });
      expect((await reader.request({ action: 'GET', key: 'pub^x' })).error?.code).toBe('KEY_NOT_FOUND');

      // Settings that need a restart are named.
      server.setFile({ users: all, maxDepth: 10 });
      expect((await admin.request({ action: 'CONFIG', op: 'RELOAD' })).result).toMatchObject({
        users: 3,
        restartNeeded: ['maxDepth'],
      });
    } finally {
      await server.close();
    }
  });

  it('logs out connections of a user whose password changed', async () => {
    const all = await users(USERS);
    const server = await startAuthServer({ users: all });
    try {
      const app = await as(server, 'app', 'app-pw');
      const rotated = await users({ app: { ...USERS.app, password: 'new-pw' } });
      server.setFile({ users: { ...all, app: rotated.app } });
      await server.server.reload();
      await waitFor(() => app.pushes.length > 0, { message: 'the deauthenticated push' });
      expect(app.pushes[0]?.message).toMatch(/new password/);
      expect((await app.request({ action: 'GET', key: 'app^a' })).error?.code).toBe('NOAUTH');
      expect(await app.request({ action: 'AUTH', user: 'app', password: 'new-pw' })).toMatchObject({
        ok: true,
      });
    } finally {
      await server.close();
    }
  });

  it('an open server that gains users requires AUTH from its live connections', async () => {
    const server = await startAuthServer({});
    try {
      const c = await client(server);
      expect(await c.request({ action: 'SET', key: 'k', value: 1 })).toMatchObject({ ok: true });
      server.setFile({ users: await users({ admin: USERS.admin }) });
      await server.server.reload();
      await waitFor(() => c.pushes.length > 0, { message: 'the deauthenticated push' });
      expect((await c.request({ action: 'GET', key: 'k' })).error?.code).toBe('NOAUTH');
    } finally {
      await server.close();
    }
  });
});

describe('an open server (no users)', () => {
  it('runs everything without AUTH, and says so in HELLO; AUTH explains it is not needed', async () => {
    const server = await startAuthServer({});
    try {
      const c = await client(server);
      expect((await c.request({ action: 'HELLO' })).result).toMatchObject({
        authRequired: false,
        user: null,
      });
      expect(await c.request({ action: 'INFO' })).toMatchObject({ ok: true });
      const auth = await c.request({ action: 'AUTH', user: 'a', password: 'b' });
      expect(auth.error?.message).toMatch(/no users are configured/);
      const reload = await c.request({ action: 'CONFIG', op: 'RELOAD' });
      expect(reload.ok).toBe(true);
    } finally {
      await server.close();
    }
  });
});
