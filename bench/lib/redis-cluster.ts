/**
 * A throwaway Redis Cluster on loopback for the cluster benchmark: `masters` redis-server processes
 * (no replicas, no persistence) in a temp dir, joined with `redis-cli --cluster create`, ready once
 * every node reports cluster_state:ok with all 16384 slots assigned.
 *
 * test/helpers/redis.ts starts the same kind of cluster for the tests; this one lives here so that
 * bench/ does not depend on test/ (imports go test -> bench, as test/helpers already takes
 * `freePort` from bench/lib/servers.ts), and it adds what a benchmark needs: each master's pid, to
 * read its CPU time from /proc.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './servers.js';

const run = promisify(execFile);
const HOST = '127.0.0.1';

export interface BenchCluster {
  readonly masters: readonly { readonly port: number; readonly pid: number }[];
  /** `redis-cluster://127.0.0.1:P1,...`: the `--store` of a caretkv node over this cluster. */
  readonly storeUrl: string;
  /** One redis-cli command against one node, its output trimmed. */
  cli(port: number, ...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function poll(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startBenchCluster(masters = 3): Promise<BenchCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'caretkv-bench-cluster-'));
  const children: { port: number; child: ChildProcess }[] = [];
  const cli = async (port: number, ...args: string[]): Promise<string> =>
    (await run('redis-cli', ['-h', HOST, '-p', String(port), ...args])).stdout.trim();
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      // The bus port explicitly: port + 10000 (Redis's default) may be past 65535.
      const busPort = await freePort();
      const child = spawn(
        'redis-server',
        [
          ...['--port', String(port), '--cluster-port', String(busPort), '--bind', HOST],
          ...['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`)],
          ...['--dir', dir, '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
        ],
        { stdio: 'ignore' },
      );
      children.push({ port, child });
    }
    for (const { port } of children)
      await poll(`redis-server on ${port}`, async () => (await cli(port, 'PING')) === 'PONG');
    await run('redis-cli', [
      '--cluster',
      'create',
      ...children.map(({ port }) => `${HOST}:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (const { port } of children)
      await poll(`node ${port} to see the cluster ready`, async () => {
        const info = await cli(port, 'CLUSTER', 'INFO');
        return info.includes('cluster_state:ok') && info.includes('cluster_slots_ok:16384');
      });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    masters: children.map(({ port, child }) => ({ port, pid: child.pid! })),
    storeUrl: `redis-cluster://${children.map(({ port }) => `${HOST}:${port}`).join(',')}`,
    cli,
    stop,
  };
}
