import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../src/cli/bench/report.js';
import { runCli, type SpawnedServer, spawnServer } from './helpers/cli.js';
import { connect, destroyAllSockets, readBytes, waitFor } from './helpers/net.js';

/**
 * `caretkv bench` end to end: the built CLI drives real targets over real sockets. Numbers are
 * only checked for sanity (never timed assertions: other suites share the two cores).
 */

async function bench(args: readonly string[]) {
  return runCli(['bench', '--conns', '8', ...args]);
}

async function benchJson(args: readonly string[]): Promise<BenchReport> {
  const result = await bench([...args, '--json']);
  expect(result.stderr, 'bench wrote to stderr').toBe('');
  expect(result.code).toBe(0);
  const lines = result.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as BenchReport;
}

/** Every field of the --json contract, with sane values. */
function expectSaneReport(report: BenchReport, target: BenchReport['target']): void {
  expect(Object.keys(report).sort()).toEqual(
    [
      'target',
      'host',
      'port',
      'conns',
      'pipeline',
      'threads',
      'mix',
      'keyspace',
      'valueSize',
      'warmupSeconds',
      'prefill',
      'requests',
      'durationSeconds',
      'opsPerSec',
      'latencyMs',
      'errors',
      'generator',
      'stoppedEarly',
    ].sort(),
  );
  expect(report.target).toBe(target);
  expect(report.requests).toBeGreaterThan(0);
  expect(report.opsPerSec).toBeGreaterThan(0);
  expect(report.durationSeconds).toBeGreaterThan(0);
  const l = report.latencyMs;
  expect(Object.keys(l).sort()).toEqual(['avg', 'max', 'p50', 'p90', 'p99', 'p999']);
  expect(l.p50).toBeGreaterThan(0);
  expect(l.p50).toBeLessThanOrEqual(l.p90);
  expect(l.p90).toBeLessThanOrEqual(l.p99);
  expect(l.p99).toBeLessThanOrEqual(l.p999);
  expect(l.p999).toBeLessThanOrEqual(l.max);
  expect(l.avg).toBeLessThanOrEqual(l.max);
  expect(report.errors.total).toBe(Object.values(report.errors.byCode).reduce((a, b) => a + b, 0));
  expect(report.generator.cpuPercent).toBeGreaterThan(0);
  expect(report.generator.eventLoopUtilization).toBeGreaterThan(0);
  expect(report.generator.eventLoopUtilization).toBeLessThanOrEqual(1);
  expect(typeof report.generator.saturated).toBe('boolean');
  expect(report.stoppedEarly).toBe(false);
}

/** A port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

afterEach(() => destroyAllSockets());

describe('caretkv bench --target echo (the transport ceiling)', () => {
  let echo: SpawnedServer;
  beforeAll(async () => {
    echo = await spawnServer(['echo']);
  });
  afterAll(async () => {
    await echo?.kill();
  });

  it('runs for ~2 s with every action and reports sane numbers and complete JSON', async () => {
    const report = await benchJson([
      '--target',
      'echo',
      '--port',
      String(echo.port),
      '--duration',
      '2',
      '--pipeline',
      '4',
      '--actions',
      'SET,GET,INCR,PING',
    ]);
    expectSaneReport(report, 'echo');
    expect(report.errors).toEqual({ total: 0, byCode: {} });
    expect(report).toMatchObject({ conns: 8, pipeline: 4, mix: { SET: 1, GET: 1, INCR: 1, PING: 1 } });
    expect(report.durationSeconds).toBeGreaterThanOrEqual(2);
  });

  it('stops at exactly --requests N, split over connections and worker threads', async () => {
    const single = await benchJson(['--target', 'echo', '--port', String(echo.port), '--requests', '1237']);
    expect(single.requests).toBe(1237);
    expect(single.threads).toBe(1);

    const threaded = await benchJson([
      '--target',
      'echo',
      '--port',
      String(echo.port),
      '--requests',
      '5003',
      '--pipeline',
      '16',
      '--threads',
      '2',
    ]);
    expect(threaded.requests).toBe(5003);
    expect(threaded.threads).toBe(2);
    expectSaneReport(threaded, 'echo');

    // Fewer requests than connections: only as many connections as requests.
    const tiny = await benchJson(['--target', 'echo', '--port', String(echo.port), '--requests', '3']);
    expect(tiny).toMatchObject({ requests: 3, conns: 3 });
  });

  it('does not count warm-up requests', async () => {
    const report = await benchJson([
      '--target',
      'echo',
      '--port',
      String(echo.port),
      '--requests',
      '2000',
      '--warmup',
      '0.5',
    ]);
    expect(report.requests).toBe(2000);
    expect(report.warmupSeconds).toBe(0.5);
  });

  it('prints the table, and no progress lines when stderr is not a TTY', async () => {
    const result = await bench(['--target', 'echo', '--port', String(echo.port), '--duration', '1.2']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    for (const label of ['target', 'throughput', 'latency ms', 'errors', 'generator']) {
      expect(result.stdout).toMatch(new RegExp(`^  ${label}\\b`, 'm'));
    }
    expect(result.stdout).toMatch(/ops\/s/);
    expect(result.stdout).toMatch(/% CPU of one core/);
  });
});

describe('caretkv bench against a server that fails', () => {
  const servers: net.Server[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  });

  async function listen(onConnection: (socket: net.Socket) => void): Promise<number> {
    const server = net.createServer(onConnection);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as net.AddressInfo).port;
  }

  it('exits 1 with a clear message when nothing listens', async () => {
    const result = await bench(['--target', 'echo', '--port', String(await deadPort()), '--duration', '30']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^caretkv: cannot connect to 127\.0\.0\.1:\d+: connection refused/);
  });

  it('exits 1 when the server drops its connections mid-run', async () => {
    const sockets = new Set<net.Socket>();
    let received = 0;
    const port = await listen((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      // Echo for a while, then die.
      socket.on('data', (chunk) => {
        received += chunk.length;
        socket.write(chunk);
      });
    });
    const run = bench(['--target', 'echo', '--port', String(port), '--duration', '60']);
    await waitFor(() => received > 10_000, { message: 'load to arrive', timeoutMs: 20_000 });
    for (const socket of sockets) socket.destroy();
    const result = await run;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^caretkv: (127\.0\.0\.1:\d+ closed a connection mid-run|connection to .* failed mid-run)/,
    );
  });

  it('exits 1 when the server stops answering (--timeout), instead of hanging', async () => {
    const port = await listen((socket) => {
      socket.on('error', () => {});
      socket.resume(); // reads, never answers
    });
    const result = await bench([
      '--target',
      'echo',
      '--port',
      String(port),
      '--requests',
      '100',
      '--timeout',
      '1',
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no reply from 127\.0\.0\.1:\d+ for 1\.0 s with 8 requests in flight/);
  });

  it('refuses bad options with exit 2, naming the option', async () => {
    const conflict = await bench(['--duration', '1', '--requests', '10']);
    expect(conflict.code).toBe(2);
    expect(conflict.stderr).toMatch(/--duration.*cannot be used with.*--requests/);
    const actions = await bench(['--actions', 'SET,DEL']);
    expect(actions.code).toBe(2);
    expect(actions.stderr).toMatch(/--actions: unknown action 'DEL'/);
    const conns = await bench(['--conns', '0']);
    expect(conns.code).toBe(2);
    expect(conns.stderr).toMatch(/--conns/);
  });
});

describe('caretkv bench --target caretkv against a scripted NDJSON server', () => {
  // A minimal stand-in speaking the wire contract (docs/protocol.md) with a Map: it pins down how
  // the caretkv target counts successes and error codes, independently of the real server.
  let server: net.Server;
  let port = 0;
  const store = new Map<string, unknown>();
  beforeAll(async () => {
    server = net.createServer((socket) => {
      socket.on('error', () => {});
      let carry = '';
      socket.on('data', (chunk: Buffer) => {
        const lines = (carry + chunk.toString()).split('\n');
        carry = lines.pop() ?? '';
        let out = '';
        for (const line of lines) {
          const req = JSON.parse(line) as { action: string; key: string; value?: unknown };
          const key = req.key;
          if (req.action === 'PING') out += '{"ok":true,"result":"PONG"}\n';
          else if (req.action === 'SET') {
            store.set(key, req.value);
            out += '{"ok":true,"result":{"written":true}}\n';
          } else if (req.action === 'INCR') {
            const n = ((store.get(key) as number | undefined) ?? 0) + 1;
            store.set(key, n);
            out += `{"ok":true,"result":${n}}\n`;
          } else if (store.has(key)) out += `{"ok":true,"result":${JSON.stringify(store.get(key))}}\n`;
          else out += '{"ok":false,"error":{"code":"KEY_NOT_FOUND","message":"The key does not exist."}}\n';
        }
        socket.write(out);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('counts successes by prefix and errors by code', async () => {
    const misses = await benchJson(['--port', String(port), '--requests', '2000', '--actions', 'GET,PING:0']);
    expect(misses).toMatchObject({
      requests: 2000,
      errors: { total: 2000, byCode: { KEY_NOT_FOUND: 2000 } },
    });

    const mixed = await benchJson([
      ...['--port', String(port), '--prefill', '--keyspace', '3000', '--requests', '4000'],
      ...['--pipeline', '8', '--actions', 'SET,GET,INCR,PING'],
    ]);
    expectSaneReport(mixed, 'caretkv');
    expect(mixed).toMatchObject({ requests: 4000, errors: { total: 0, byCode: {} } });
    expect(store.get('bench^d2^k2999')).toBe('x'.repeat(32));
  });
});

describe('caretkv bench --target caretkv', () => {
  let server: SpawnedServer;
  beforeAll(async () => {
    server = await spawnServer(['serve']);
  });
  afterAll(async () => {
    await server?.kill();
  });

  it('runs for ~2 s against `caretkv serve` with only expected error codes', async () => {
    const report = await benchJson([
      '--port',
      String(server.port),
      '--prefill',
      '--keyspace',
      '10000',
      '--duration',
      '2',
      '--pipeline',
      '4',
      '--actions',
      'SET,GET,INCR,PING',
    ]);
    expectSaneReport(report, 'caretkv');
    // Prefilled, so GETs hit; INCR keys live apart from string values: no error is expected.
    expect(report.errors).toEqual({ total: 0, byCode: {} });
    expect(report.prefill).toBe(true);
  });
});

/** One redis-cli command's output, trimmed (redis-cli ships with redis-server). */
function redisCli(port: number, ...args: string[]): string {
  const result = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout.trim();
}

const haveRedis = spawnSync('redis-server', ['--version']).status === 0;
const redisRequired = process.env.CI === 'true';

describe('caretkv bench --target redis', () => {
  let redis: ChildProcess | undefined;
  let port = 0;

  beforeAll(async () => {
    if (!haveRedis) return;
    port = await deadPort();
    redis = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    await waitFor(
      async () => {
        try {
          const socket = await connect(port);
          const pong = readBytes(socket, 7);
          socket.write('PING\r\n');
          const ok = (await pong).toString() === '+PONG\r\n';
          socket.destroy();
          return ok;
        } catch {
          return false;
        }
      },
      { message: 'redis-server to answer PING', timeoutMs: 10_000, intervalMs: 50 },
    );
  });
  afterAll(async () => {
    if (redis && redis.exitCode === null) {
      const exited = new Promise((resolve) => redis!.once('exit', resolve));
      redis.kill('SIGKILL');
      await exited;
    }
  });

  it('drives redis-server over RESP for ~2 s with every action and no errors', async (ctx) => {
    if (!haveRedis) {
      if (redisRequired)
        throw new Error('redis-server is required when CI=true (apt-get install redis-server)');
      ctx.skip('redis-server is not installed (apt-get install redis-server); CI requires it');
    }
    const report = await benchJson([
      '--target',
      'redis',
      '--port',
      String(port),
      '--duration',
      '2',
      '--pipeline',
      '16',
      '--actions',
      'SET,GET,INCR,PING',
    ]);
    expectSaneReport(report, 'redis');
    expect(report.errors).toEqual({ total: 0, byCode: {} });

    // The SETs and INCRs really landed, under the namespaced key pattern.
    expect(Number(redisCli(port, 'DBSIZE'))).toBeGreaterThan(0);
    expect(redisCli(port, 'RANDOMKEY')).toMatch(/^bench\^[dc]\d\d\^k\d{5}$/);
  });

  it('--prefill writes every key of the keyspace exactly once before measuring', async (ctx) => {
    if (!haveRedis) {
      if (redisRequired)
        throw new Error('redis-server is required when CI=true (apt-get install redis-server)');
      ctx.skip('redis-server is not installed (apt-get install redis-server); CI requires it');
    }
    expect(redisCli(port, 'FLUSHALL')).toBe('OK');
    const report = await benchJson([
      ...['--target', 'redis', '--port', String(port), '--prefill', '--keyspace', '2500'],
      ...['--requests', '500', '--actions', 'GET'],
    ]);
    expect(report).toMatchObject({ prefill: true, requests: 500, errors: { total: 0 } });
    // Only the prefill writes (the run itself only GETs): every key, once.
    expect(redisCli(port, 'DBSIZE')).toBe('2500');
    expect(redisCli(port, 'GET', 'bench^d2^k2499')).toBe('x'.repeat(32));
  });

  it('counts redis errors by prefix', async (ctx) => {
    if (!haveRedis) {
      if (redisRequired)
        throw new Error('redis-server is required when CI=true (apt-get install redis-server)');
      ctx.skip('redis-server is not installed (apt-get install redis-server); CI requires it');
    }
    // One counter key holding a string: every INCR is an ERR reply, counted by its prefix.
    expect(redisCli(port, 'SET', 'bench^c0^k0', 'not-a-number')).toBe('OK');
    const report = await benchJson([
      '--target',
      'redis',
      '--port',
      String(port),
      '--requests',
      '3000',
      '--actions',
      'INCR,PING',
      '--keyspace',
      '1',
    ]);
    expect(report.requests).toBe(3000);
    expect(report.errors.total).toBeGreaterThan(1000);
    expect(report.errors.byCode).toEqual({ ERR: report.errors.total });
  });
});
