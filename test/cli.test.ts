import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { launcherNodeFlags } from '../bench/lib/servers.js';
import { CONFIG_KEYS, flagName } from '../src/config.js';
import { CLI_PATH, runCli, type SpawnedServer, spawnServer } from './helpers/cli.js';
import { connect, destroyAllSockets, once, readToEnd, roundTrip } from './helpers/net.js';

let proc: SpawnedServer | undefined;

afterEach(async () => {
  destroyAllSockets();
  await proc?.kill();
  proc = undefined;
});

describe('caretkv CLI', () => {
  it('--help lists the commands and every setting with its environment variable', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const text of ['serve', 'echo', '--idle-timeout', 'CARETKV_MAX_CONNECTIONS', '--log-format']) {
      expect(stdout).toContain(text);
    }
  });

  it.each([['--version'], ['-V']])("%s prints package.json's version, exit 0", async (flag) => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    const { code, stdout, stderr } = await runCli([flag]);
    expect(code).toBe(0);
    expect(stdout).toBe(`${pkg.version}\n`);
    expect(stderr).toBe('');
  });

  it('runs by its #! line with the Node flags that `npm start` and the benchmarks use', async () => {
    const shebang = (path: string): string => readFileSync(path, 'utf8').split('\n', 1)[0]!;
    const line = shebang(CLI_PATH);
    expect(line).toBe(shebang(new URL('../src/cli.ts', import.meta.url).pathname));
    const flags = launcherNodeFlags(CLI_PATH);
    expect(flags).toEqual(['--max-semi-space-size=32']);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      scripts: { start: string };
    };
    expect(pkg.scripts.start).toBe(`node ${flags.join(' ')} dist/cli.js serve`);
    // The line itself works: the kernel runs it through env -S, and node accepts the flags.
    const child = spawn(CLI_PATH, ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(0);
    expect(out).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('serve --help lists every flag, --config included', async () => {
    const { code, stdout } = await runCli(['serve', '--help']);
    expect(code).toBe(0);
    for (const flag of ['--config', ...CONFIG_KEYS.map(flagName)]) expect(stdout).toContain(`${flag} <`);
  });

  it.each([
    [['serve', '--port', 'seventy'], '--port: must be an integer between 0 and 65535'],
    [['echo', '--idle-timeout', '-3'], '--idle-timeout: must be a number between 0'],
    [['serve', '--log-format', 'xml'], '--log-format: must be one of json, pretty'],
    [['serve', '--no-such-flag'], "unknown option '--no-such-flag'"],
  ])('%j: one line naming the flag on stderr, exit 2', async (args, message) => {
    const { code, stderr, stdout } = await runCli(args);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stdout).toBe('');
  });

  it('names the environment variable when the bad value came from there', async () => {
    const { code, stderr } = await runCli(['serve'], { env: { CARETKV_MAX_CONNECTIONS: 'lots' } });
    expect(code).toBe(2);
    expect(stderr).toBe('caretkv: CARETKV_MAX_CONNECTIONS: must be an integer >= 1\n');
  });

  it('port in use: one clear line, exit 1, no stack trace', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const { code, stderr } = await runCli(['serve', '--port', String(port)]);
      expect(code).toBe(1);
      expect(stderr).toBe(
        `caretkv: cannot listen on 127.0.0.1:${port}: address already in use (is another server running? choose another --port)\n`,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('takes settings from the environment, flags winning', async () => {
    proc = await spawnServer(['serve', '--max-connections', '1'], {
      env: { CARETKV_MAX_CONNECTIONS: '50', CARETKV_IDLE_TIMEOUT: '0.2', CARETKV_LOG_LEVEL: 'debug' },
    });
    const first = await connect(proc.port);
    expect((await roundTrip(first, '{"action":"PING"}\n')).toString()).toBe('{"ok":true,"result":"PONG"}\n');
    // --max-connections 1 beat the environment's 50.
    const second = await connect(proc.port);
    expect(JSON.parse((await readToEnd(second)).toString()).error.code).toBe('TOO_MANY_CONNECTIONS');
    // CARETKV_IDLE_TIMEOUT applied: the idle connection is closed, and debug lines carry its id.
    await once(first, 'close');
    const idle = await proc.waitForLog((r) => r.msg === 'idle timeout');
    expect(idle.conn).toEqual(expect.any(Number));
  });
});
