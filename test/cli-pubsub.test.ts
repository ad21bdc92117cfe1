/**
 * `caretkv cli SUBSCRIBE ...` and `OBSERVE ...` stream pushes until Ctrl+C: the built CLI as a
 * process (stdout is a pipe, so it prints JSON lines), a real server in this process.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CaretClient, connect } from '../src/client/index.js';
import { type SpawnedCli, spawnCli } from './helpers/cli.js';
import { waitFor } from './helpers/net.js';
import { startServer, type TestServer } from './helpers/server.js';

const ENV = { CARETKV_HISTFILE: '' };

let server: TestServer;
let db: CaretClient;
const running: SpawnedCli[] = [];

beforeAll(async () => {
  server = await startServer({}, { logLevel: 'warn' });
  db = await connect({ port: server.port });
});
afterAll(async () => {
  await db.close();
  await server.close();
});
afterEach(async () => {
  for (const cli of running.splice(0)) await cli.kill();
});

function stream(...args: string[]): SpawnedCli {
  const cli = spawnCli(['cli', '--port', String(server.port), ...args], { env: ENV });
  running.push(cli);
  return cli;
}

/** stdout's complete lines, parsed. */
function lines(cli: SpawnedCli): unknown[] {
  return cli
    .stdout()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

async function untilLines(cli: SpawnedCli, n: number): Promise<unknown[]> {
  await waitFor(
    () => {
      if (cli.child.exitCode !== null) throw new Error(`the CLI exited early: ${cli.stderr()}`);
      return lines(cli).length >= n;
    },
    { timeoutMs: 15_000, message: `${n} lines from the CLI` },
  );
  return lines(cli);
}

async function subscriptions(): Promise<{ subscriptions: number; observations: number }> {
  return (await db.info()).pubsub;
}

describe('caretkv cli streams pushes', () => {
  it('SUBSCRIBE news^> prints each message as a JSON line until SIGINT, then exits 0', async () => {
    const cli = stream('SUBSCRIBE', 'news^>');
    // The SUBSCRIBE answer first: how many patterns the connection holds.
    expect(await untilLines(cli, 1)).toEqual([1]);
    expect(await db.publish('news^eu', { headline: 'hello' })).toBe(1);
    expect(await db.publish('sports^eu', 'not for it')).toBe(0);
    expect(await db.publish('news^eu^fr', [1, 2])).toBe(1);
    const [, first, second] = await untilLines(cli, 3);
    expect(first).toMatchObject({
      event: 'message',
      channel: 'news^eu',
      pattern: 'news^>',
      message: { headline: 'hello' },
      seq: 1,
    });
    expect(second).toMatchObject({ event: 'message', channel: 'news^eu^fr', message: [1, 2], seq: 2 });

    cli.child.kill('SIGINT');
    expect(await cli.exited).toEqual({ code: 0, signal: null });
    expect(cli.stderr()).toBe('');
    expect((await subscriptions()).subscriptions).toBe(0);
  });

  it('OBSERVE users^> prints each change as a JSON line until SIGINT, then exits 0', async () => {
    const cli = stream('OBSERVE', 'users^>');
    expect(await untilLines(cli, 1)).toEqual([1]);
    await db.set('users^1', { name: 'ada' });
    await db.incr('users^visits');
    await db.set('posts^1', 'not observed');
    await db.del('users^1');
    const [, ...changes] = await untilLines(cli, 4);
    expect(changes).toEqual([
      { event: 'change', key: 'users^1', op: 'set', value: { name: 'ada' }, seq: 1 },
      { event: 'change', key: 'users^visits', op: 'incr', value: 1, seq: 2 },
      { event: 'change', key: 'users^1', op: 'del', seq: 3 },
    ]);
    cli.child.kill('SIGINT');
    expect(await cli.exited).toEqual({ code: 0, signal: null });
    expect((await subscriptions()).observations).toBe(0);
  });
});
