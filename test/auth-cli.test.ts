/** `caretkv passwd`, `serve --config`, and SIGHUP reload, as spawned processes. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHash, verifyPassword } from '../src/auth/password.js';
import { hashOf, LineClient } from './auth-helpers.js';
import { CLI_PATH, runCli, spawnServer } from './helpers/cli.js';
import { waitFor } from './helpers/net.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'caretkv-auth-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function passwd(input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_PATH, 'passwd'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('caretkv passwd', () => {
  it('prints a scrypt hash of the password read from stdin (one trailing newline dropped)', async () => {
    const out = await passwd('s3cret pass\n');
    expect(out.code).toBe(0);
    const hash = out.stdout.trim();
    expect(hash).toMatch(/^scrypt\$N=16384,r=8,p=1\$/);
    expect(await verifyPassword('s3cret pass', parseHash(hash))).toBe(true);
    expect(out.stdout).not.toMatch(/s3cret/);
  });

  it('refuses an empty password', async () => {
    const out = await passwd('\n');
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/empty password/);
  });
});

describe('caretkv serve --config', () => {
  it('refuses unknown keys in the file with a message naming the file and the key', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ port: 0, userz: {} }));
    const out = await runCli(['serve', '--config', file]);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/bad\.json: userz: unknown setting/);
  });

  it('loads users from the file and re-reads it on SIGHUP, logging out a removed user', async () => {
    const file = join(dir, 'caretkv.json');
    const admin = { password: await hashOf('admin-pw'), categories: ['all'], read: ['>'], write: ['>'] };
    const app = { password: await hashOf('app-pw'), categories: ['read'], read: ['>'] };
    writeFileSync(file, JSON.stringify({ users: { admin, app } }));
    const server = await spawnServer(['serve', '--config', file]);
    const c = await LineClient.connect(server.port);
    try {
      expect((await c.request({ action: 'GET', key: 'k' })).error?.code).toBe('NOAUTH');
      expect(await c.request({ action: 'AUTH', user: 'app', password: 'app-pw' })).toMatchObject({
        ok: true,
      });

      writeFileSync(file, JSON.stringify({ users: { admin } }));
      server.child.kill('SIGHUP');
      await server.waitForLog((r) => r.msg === 'configuration reloaded');
      await waitFor(() => c.pushes.length > 0, { message: 'the deauthenticated push' });
      expect((await c.request({ action: 'GET', key: 'k' })).error?.code).toBe('NOAUTH');

      // A broken file on SIGHUP is logged; the server keeps running with what it had.
      writeFileSync(file, '{ not json');
      server.child.kill('SIGHUP');
      await server.waitForLog((r) => r.msg.startsWith('reload failed'));
      expect(await c.request({ action: 'AUTH', user: 'admin', password: 'admin-pw' })).toMatchObject({
        ok: true,
      });
    } finally {
      c.destroy();
      await server.kill();
    }
  });
});
