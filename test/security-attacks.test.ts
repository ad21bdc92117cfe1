/**
 * Attacks from issue 14, replayed over real sockets: each `describe` is one finding of
 * docs/security.md's "Tested attacks" section and failed before its fix.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type AuthServer, LineClient, startAuthServer, users } from './auth-helpers.js';

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
