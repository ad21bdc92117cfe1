/**
 * `caretkv cli` as users run it: the built CLI in its own process against a real server
 * (in-process, JSON protocol, ephemeral port). One-shot, piped and interactive (through a
 * pseudo-terminal made by util-linux `script`) modes; exit codes and exact output.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as connectClient } from '../src/client/index.js';
import { CLI_PATH, type Exit, runCli } from './helpers/cli.js';
import { waitFor } from './helpers/net.js';
import { startServer, type TestServer } from './helpers/server.js';

/** History off, no colour hints from the developer's shell, nothing from their CARETKV_* settings. */
const ENV = { CARETKV_HISTFILE: '' };

let server: TestServer;
let port: number;

beforeAll(async () => {
  server = await startServer({}, { logLevel: 'warn' });
  port = server.port;
});
afterAll(async () => {
  await server.close();
});

const cli = (...args: string[]) => runCli(['cli', '--port', String(port), ...args], { env: ENV });

/** Run the CLI with `input` on stdin (a pipe, so not a TTY). */
function piped(input: string, args: string[] = []): Promise<Exit & { stdout: string; stderr: string }> {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first`);
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CARETKV_')));
  const child = spawn(process.execPath, [CLI_PATH, 'cli', '--port', String(port), ...args], {
    env: { ...clean, ...ENV },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (t: string) => {
    stdout += t;
  });
  child.stderr.setEncoding('utf8').on('data', (t: string) => {
    stderr += t;
  });
  child.stdin.end(input);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A port nothing listens on: bind one, then let it go. */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port: free } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return free;
}

describe('caretkv cli, one-shot', () => {
  it('SET then GET: prints the result as one line of JSON, exit 0', async () => {
    const set = await cli('SET', 'users^42^name', 'Ada Lovelace');
    expect(set).toMatchObject({ code: 0, stdout: 'true\n', stderr: '' });
    const get = await cli('GET', 'users^42^name');
    expect(get).toMatchObject({ code: 0, stdout: '"Ada Lovelace"\n', stderr: '' });
  });

  it('typed values, named fields, negative numbers and JSON with spaces reach the server as meant', async () => {
    expect((await cli('SET', 'n', '5', 'ttl=100000')).stdout).toBe('true\n');
    expect((await cli('INCR', 'n', 'by=2')).stdout).toBe('7\n');
    expect((await cli('INCR', 'n', '-10')).stdout).toBe('-3\n');
    expect((await cli('SET', 'doc', '{"name": "Ada", "tags": ["a b"]}')).code).toBe(0);
    expect((await cli('SET', 's', '"5"')).code).toBe(0);
    const db = await connectClient({ port });
    try {
      expect(await db.get('n')).toBe(-3);
      expect(await db.ttl('n')).toBeGreaterThan(0);
      expect(await db.get('doc')).toEqual({ name: 'Ada', tags: ['a b'] });
      expect(await db.get('s')).toBe('5');
    } finally {
      await db.close();
    }
  });

  it('KEY_NOT_FOUND: the error on stderr as "(error) CODE message", nothing on stdout, exit 1', async () => {
    const r = await cli('GET', 'no^such^key');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^\(error\) KEY_NOT_FOUND \S.*\n$/);
  });

  it('a usage mistake is refused before sending, exit 1', async () => {
    const r = await cli('SET', 'only-a-key');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('(error) USAGE missing value; usage: SET key value');
  });

  it('a raw JSON request as the command; the server as a caretkv:// URL', async () => {
    const raw = await runCli(
      ['cli', `caretkv://127.0.0.1:${port}`, '{"action":"ECHO","value":[1,{"a":null}]}'],
      {
        env: ENV,
      },
    );
    expect(raw).toMatchObject({ code: 0, stdout: '[1,{"a":null}]\n' });
    const url = await runCli(['cli', '--url', `caretkv://127.0.0.1:${port}`, 'PING'], { env: ENV });
    expect(url).toMatchObject({ code: 0, stdout: '"PONG"\n' });
  });

  it('connection refused: one clear line on stderr, exit 1', async () => {
    const free = await closedPort();
    const r = await runCli(['cli', '--port', String(free), 'PING'], { env: ENV });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `caretkv: cannot connect to 127.0.0.1:${free}: connection refused (is \`caretkv serve\` running there? check --host and --port)\n`,
    );
  });

  it('bad flags exit 2', async () => {
    expect((await runCli(['cli', '--port', 'x', 'PING'], { env: ENV })).code).toBe(2);
    expect((await runCli(['cli', '--url', 'http://x', 'PING'], { env: ENV })).code).toBe(2);
  });
});

describe('caretkv cli, piped', () => {
  it('runs each line in order, one output line each; any failure exits 1', async () => {
    const input = [
      'SET p^1 1',
      'GET p^1',
      '',
      '# comments and blank lines print nothing',
      'GET p^missing',
      '{"action":"INCR","key":"p^1","by":41,"id":"x"}',
      'MGET p^1 p^missing',
      'KEYS p',
      'SET p^bad',
      '{not json',
    ].join('\n');
    const r = await piped(`${input}\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toEqual([
      'true',
      '1',
      expect.stringMatching(/^\(error\) KEY_NOT_FOUND /),
      '42',
      '{"p^1":42}',
      '{"keys":["1"],"next":null}',
      expect.stringMatching(/^\(error\) USAGE missing value/),
      expect.stringMatching(/^\(error\) BAD_JSON /),
    ]);
  });

  it('exit 0 when every command succeeds; CRLF input and a last line without newline are fine', async () => {
    const r = await piped('SET q 1\r\nINCR q\r\nGET q');
    expect(r).toMatchObject({ code: 0, stdout: 'true\n2\n2\n', stderr: '' });
  });

  it('the server answers an unknown action itself', async () => {
    const r = await piped('{"action":"NOPE"}\n');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^\(error\) UNKNOWN_ACTION /);
  });

  it('1000 piped commands come back complete and in order', async () => {
    const lines = Array<string>(1000).fill('INCR bulk');
    const r = await piped(`${lines.join('\n')}\n`);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join(''));
  });
});

describe('caretkv cli, interactive (pseudo-terminal via script)', () => {
  it('prompts, runs commands, prints coloured results and errors, leaves on quit', async () => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CARETKV_')));
    delete clean.NO_COLOR;
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_PATH)} cli --port ${port}`;
    // `script` gives the CLI a real TTY on stdin and stdout; -e returns the child's exit status.
    const child = spawn('script', ['-qefc', command, '/dev/null'], {
      env: { ...clean, ...ENV, TERM: 'xterm' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => {
      screen += t;
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    try {
      const prompt = `127.0.0.1:${port}> `;
      await waitFor(() => screen.includes(prompt), { message: 'the prompt', timeoutMs: 15_000 });
      child.stdin.write('SET tty^k "from a terminal"\r');
      await waitFor(() => screen.includes('\x1b[35mtrue\x1b[39m'), { message: 'a coloured true' });
      child.stdin.write('GET tty^k\r');
      await waitFor(() => screen.includes('\x1b[32m"from a terminal"\x1b[39m'), { message: 'the value' });
      child.stdin.write('GET tty^none\r');
      await waitFor(() => screen.includes('\x1b[31m(error) KEY_NOT_FOUND\x1b[39m'), { message: 'the error' });
      child.stdin.write('quit\r');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
