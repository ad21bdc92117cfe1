/**
 * Persistence over real sockets and real files: restart after SIGKILL, the admin actions
 * (REWRITE, BACKUP, INFO), start-up refusal of a damaged log, and the log tools
 * (`caretkv check-log`, `caretkv backup`). The kill-under-load test is persistence-crash.test.ts.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type CaretClient, connect } from '../src/client/index.js';
import { LineClient, startAuthServer, users } from './auth-helpers.js';
import { runCli, type SpawnedServer, spawnServer } from './helpers/cli.js';
import { startServer, type TestServer } from './helpers/server.js';

const root = mkdtempSync(join(tmpdir(), 'caretkv-persist-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `d${n++}`);

const servers: (SpawnedServer | TestServer)[] = [];
const clients: CaretClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) {
    if ('kill' in s) await s.kill();
    else await s.close();
  }
});

async function serve(args: string[]): Promise<SpawnedServer> {
  const s = await spawnServer(['serve', ...args]);
  servers.push(s);
  return s;
}

async function client(port: number): Promise<CaretClient> {
  const c = await connect({ port, retryStrategy: () => null });
  clients.push(c);
  return c;
}

describe('a server with --data-dir', () => {
  it('keeps keys, TTLs, namespaces and MSETs across SIGKILL and restart', async () => {
    const dir = freshDir();
    const first = await serve(['--data-dir', dir, '--appendfsync', 'always']);
    const c = await client(first.port);
    await c.set('users^1^name', 'Ada');
    await c.set('users^2^name', 'Grace', { ttl: 60_000 });
    await c.mset([
      ['cfg^a', 1],
      ['cfg^b', { deep: [1, 2] }],
    ]);
    await c.incr('hits', 5);
    await c.set('gone^x', 1);
    await c.drop('gone');
    await c.set('short', 1, { ttl: 1 });
    c.destroy();
    await first.kill(); // SIGKILL: no shutdown, no final flush

    const second = await serve(['--data-dir', dir]);
    const d = await client(second.port);
    expect(await d.get('users^1^name')).toBe('Ada');
    expect(await d.get('users^2^name')).toBe('Grace');
    const ttl = (await d.ttl('users^2^name')) as number;
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await d.get('cfg^b')).toEqual({ deep: [1, 2] });
    expect(await d.get('hits')).toBe(5);
    expect(await d.exists('gone^x')).toBe(false);
    expect(await d.exists('short')).toBe(false);
    expect(await d.count('')).toBe(5);
    expect(second.logs).toContainEqual(expect.objectContaining({ msg: 'log replayed', keys: 5 }));
  });

  it('answers REWRITE and BACKUP, and INFO shows the log', async () => {
    const dir = freshDir();
    const s = await startServer({ dataDir: dir, appendfsync: 'everysec' });
    servers.push(s);
    const c = await client(s.port);
    for (let i = 0; i < 100; i++) await c.set(`k^${i % 10}`, i);
    const before = (await c.info()).persistence!;
    expect(before).toMatchObject({
      dir,
      appendfsync: 'everysec',
      rewriting: false,
      rewrites: 0,
      diskError: null,
    });
    expect(before.incrBytes).toBeGreaterThan(0);
    const rewrite = await c.rewrite();
    expect(rewrite).toMatchObject({ keys: 10 });
    const after = (await c.info()).persistence!;
    expect(after).toMatchObject({
      rewrites: 1,
      lastRewrite: rewrite,
      baseBytes: rewrite.baseBytes,
      incrBytes: 0,
    });
    await expect.poll(async () => (await c.info()).persistence!.lastFsyncAt).not.toBeNull();

    const backup = await c.backup();
    expect(backup.dir.startsWith(join(dir, 'backups'))).toBe(true);
    const restored = await startServer({ dataDir: backup.dir });
    servers.push(restored);
    const r = await client(restored.port);
    expect(await r.count('')).toBe(10);
    expect(await r.get('k^9')).toBe(99);
  });

  it('REWRITE and BACKUP need the admin permission', async () => {
    const s = await startAuthServer(
      {
        users: await users({
          admin: { password: 'admin-pw', categories: ['all'], read: ['>'], write: ['>'] },
          app: { password: 'app-pw', categories: ['read', 'write'], read: ['>'], write: ['>'] },
        }),
      },
      { dataDir: freshDir() },
    );
    const app = await LineClient.connect(s.port);
    const admin = await LineClient.connect(s.port);
    try {
      await app.request({ action: 'AUTH', user: 'app', password: 'app-pw' });
      await admin.request({ action: 'AUTH', user: 'admin', password: 'admin-pw' });
      for (const action of ['REWRITE', 'BACKUP']) {
        expect((await app.request({ action })).error?.code).toBe('NOPERM');
        expect((await admin.request({ action })).ok).toBe(true);
      }
    } finally {
      app.destroy();
      admin.destroy();
      await s.server.close();
    }
  });

  it('a server without --data-dir answers PERSISTENCE_OFF and INFO persistence null', async () => {
    const s = await startServer();
    servers.push(s);
    const c = await client(s.port);
    await expect(c.rewrite()).rejects.toMatchObject({ code: 'PERSISTENCE_OFF' });
    await expect(c.backup()).rejects.toMatchObject({ code: 'PERSISTENCE_OFF' });
    expect((await c.info()).persistence).toBeNull();
  });

  it('refuses to start on a log damaged before its end, naming the file and offset', async () => {
    const dir = freshDir();
    const first = await serve(['--data-dir', dir]);
    const c = await client(first.port);
    for (let i = 0; i < 5; i++) await c.set(`k${i}`, i);
    c.destroy();
    await first.kill();
    const incr = join(dir, 'incr.1.log');
    const bytes = readFileSync(incr);
    const second = bytes.indexOf(10) + 1;
    bytes[second + 12]! ^= 1;
    writeFileSync(incr, bytes);
    const out = await runCli(['serve', '--port', '0', '--data-dir', dir]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(
      `caretkv: cannot start on --data-dir: ${incr}: checksum mismatch at byte ${second}`,
    );
  });
});

describe('caretkv check-log', () => {
  async function logWithTornTail(): Promise<{ dir: string; incr: string; good: number }> {
    const dir = freshDir();
    const s = await serve(['--data-dir', dir, '--appendfsync', 'always']);
    const c = await client(s.port);
    await c.set('a', 1);
    await c.set('b', 2);
    c.destroy();
    await s.kill();
    const incr = join(dir, 'incr.1.log');
    const good = statSync(incr).size;
    appendFileSync(incr, 'c0ffee00 S\t"c');
    return { dir, incr, good };
  }

  it('reports a torn tail (exit 1), cuts it off with --fix (exit 0), then reports the log usable', async () => {
    const { dir, incr, good } = await logWithTornTail();
    const check = await runCli(['check-log', dir]);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain(`${incr}: torn tail at byte ${good}`);
    expect(check.stdout).toContain('run with --fix');
    expect(statSync(incr).size).toBe(good + 13);

    const fix = await runCli(['check-log', dir, '--fix']);
    expect(fix.code).toBe(0);
    expect(fix.stdout).toContain('cut off');
    expect(statSync(incr).size).toBe(good);
    const again = await runCli(['check-log', dir]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`${incr}: ok (2 records, ${good} bytes)`);
    expect(again.stdout).toContain('the log is usable');
  });

  it('does not "fix" damage in the middle (exit 1, file untouched)', async () => {
    const { dir, incr } = await logWithTornTail();
    const bytes = readFileSync(incr);
    bytes[12]! ^= 1;
    writeFileSync(incr, bytes);
    const fix = await runCli(['check-log', dir, '--fix']);
    expect(fix.code).toBe(1);
    expect(fix.stdout).toContain(
      `${incr}: damaged at byte 0 (checksum mismatch), with valid records after it`,
    );
    expect(readFileSync(incr)).toEqual(bytes);
  });

  it('names a manifest problem and a directory that is not a data directory', async () => {
    const dir = freshDir();
    const missing = await runCli(['check-log', dir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/check-log: .* holds no manifest/);
  });
});

describe('caretkv backup', () => {
  it('asks the server for a backup and prints its directory; a server starts from it', async () => {
    const dir = freshDir();
    const s = await serve(['--data-dir', dir]);
    const c = await client(s.port);
    await c.mset([
      ['x^1', 'one'],
      ['x^2', 'two'],
    ]);
    const out = await runCli(['backup', '--port', String(s.port)]);
    expect(out.code).toBe(0);
    const backupDir = out.stdout.split('\n')[0]!;
    expect(backupDir.startsWith(join(dir, 'backups'))).toBe(true);
    expect(out.stdout).toContain(`restore: caretkv serve --data-dir ${JSON.stringify(backupDir)}`);
    const restored = await serve(['--data-dir', backupDir]);
    const r = await client(restored.port);
    expect(await r.mget(['x^1', 'x^2'])).toEqual({ 'x^1': 'one', 'x^2': 'two' });
  });

  it('fails with the server error on a server without --data-dir', async () => {
    const s = await serve([]);
    const out = await runCli(['backup', '--port', String(s.port)]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('backup: PERSISTENCE_OFF');
  });
});
