/**
 * `caretkv bench --actions publish`: the built CLI drives pub/sub fan-out against a real server.
 * Numbers are checked for sanity and for exact accounting, never for speed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PublishBenchReport } from '../src/cli/bench/publish.js';
import { connect } from '../src/client/index.js';
import { runCli } from './helpers/cli.js';
import { startServer, type TestServer } from './helpers/server.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(settings: Record<string, unknown> = {}): Promise<TestServer> {
  server = await startServer(settings, { logLevel: 'warn' });
  return server;
}

async function benchJson(port: number, args: readonly string[]): Promise<PublishBenchReport> {
  const result = await runCli(['bench', '--port', String(port), '--actions', 'publish', ...args, '--json']);
  expect(result.stderr, 'bench wrote to stderr').toBe('');
  expect(result.code).toBe(0);
  const lines = result.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as PublishBenchReport;
}

function expectSane(report: PublishBenchReport): void {
  expect(Object.keys(report).sort()).toEqual(
    [
      'mode',
      'target',
      'host',
      'port',
      'channel',
      'publishers',
      'subscribers',
      'pipeline',
      'valueSize',
      'warmupSeconds',
      'publishes',
      'publishesPerSec',
      'delivered',
      'deliveredPerSec',
      'dropped',
      'durationSeconds',
      'latencyMs',
      'errors',
      'generator',
      'stoppedEarly',
    ].sort(),
  );
  expect(report.mode).toBe('publish');
  expect(report.publishes).toBeGreaterThan(0);
  expect(report.delivered).toBeGreaterThan(0);
  expect(report.publishesPerSec).toBeGreaterThan(0);
  expect(report.deliveredPerSec).toBeGreaterThan(0);
  expect(report.durationSeconds).toBeGreaterThan(0);
  const l = report.latencyMs;
  expect(Object.keys(l).sort()).toEqual(['avg', 'max', 'p50', 'p90', 'p99', 'p999']);
  expect(l.p50).toBeGreaterThan(0);
  expect(l.p50).toBeLessThanOrEqual(l.p90);
  expect(l.p90).toBeLessThanOrEqual(l.p99);
  expect(l.p99).toBeLessThanOrEqual(l.p999);
  expect(l.p999).toBeLessThanOrEqual(l.max);
  expect(report.generator.cpuPercent).toBeGreaterThan(0);
  expect(report.stoppedEarly).toBe(false);
}

describe('caretkv bench --actions publish', () => {
  it('runs for ~1 s: every publish reaches every subscriber, with latency percentiles', async () => {
    const { port } = await start();
    const report = await benchJson(port, [
      '--duration',
      '1',
      '--publishers',
      '2',
      '--subscribers',
      '3',
      '--pipeline',
      '4',
    ]);
    expectSane(report);
    expect(report).toMatchObject({ publishers: 2, subscribers: 3, pipeline: 4, dropped: 0 });
    expect(report.errors).toEqual({ total: 0, byCode: {} });
    expect(report.delivered).toBe(report.publishes * 3);
    // The server saw at least what was measured (the drain after the window is not measured).
    const db = await connect({ port });
    const info = (await db.info()).pubsub;
    await db.close();
    expect(info.publishes).toBeGreaterThanOrEqual(report.publishes);
    expect(info.messagesDelivered).toBeGreaterThanOrEqual(report.delivered);
  });

  it('--requests N publishes exactly N, split over publishers', async () => {
    const { port } = await start();
    const report = await benchJson(port, ['--requests', '501', '--publishers', '2', '--subscribers', '2']);
    expectSane(report);
    expect(report.publishes).toBe(501);
    expect(report.delivered).toBe(1002);
  });

  it('counts RATE_LIMITED refusals from the server’s publish limit and delivers the rest', async () => {
    const { port } = await start({ maxPublishRate: 100 });
    const report = await benchJson(port, ['--requests', '400', '--subscribers', '1', '--pipeline', '8']);
    const limited = report.errors.byCode.RATE_LIMITED ?? 0;
    expect(limited).toBeGreaterThan(0);
    expect(report.errors.total).toBe(limited);
    expect(report.publishes).toBe(400);
    expect(report.delivered).toBe(400 - limited);
  });

  it('prints the table, and refuses a target other than caretkv with exit 2', async () => {
    const { port } = await start();
    const table = await runCli([
      'bench',
      '--port',
      String(port),
      '--actions',
      'PUBLISH',
      '--requests',
      '100',
      '--subscribers',
      '2',
    ]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/delivered\s+200 \([\d,]+ messages\/s\)/);
    expect(table.stdout).toMatch(/publish to delivery/);
    const bad = await runCli(['bench', '--actions', 'publish', '--target', 'redis']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--actions publish: pub\/sub fan-out needs --target caretkv/);
    const help = await runCli(['bench', '--help']);
    expect(help.stdout).toMatch(/--max-publish-rate 0/);
  });
});
