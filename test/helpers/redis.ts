/**
 * Throwaway Redis servers on loopback for tests. `startRedisCluster`: `masters` redis-server
 * processes (plus `replicas` per master) in a temp dir, joined with `redis-cli --cluster create`,
 * ready once every node reports cluster_state:ok with all 16384 slots assigned. `startRedisServer`:
 * one standalone server. Debian's redis-server package brings both binaries; .ci/run installs it.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../bench/lib/servers.js';
import { waitFor } from './net.js';

const run = promisify(execFile);

const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

/**
 * Whether redis-server can be started here. In CI (CI=true) it must be (.ci/run installs it), so
 * its absence throws; elsewhere the tests that need it skip with `NO_REDIS`, saying why.
 */
export function redisAvailable(): boolean {
  if (haveRedis) return true;
  if (process.env.CI === 'true')
    throw new Error('redis-server is required when CI=true (apt-get install redis-server)');
  return false;
}

export const NO_REDIS = 'redis-server is not installed (apt-get install redis-server); CI requires it';

export interface ClusterNode {
  readonly host: string;
  readonly port: number;
  readonly process: ChildProcess;
}

export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** `host:port` of every node, for a client's start-up list. */
  readonly seeds: readonly { host: string; port: number }[];
  /** One redis-cli command against one node, its output trimmed. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** Kills every node and removes their files. */
  stop(): Promise<void>;
}

export async function startRedisCluster({
  masters = 3,
  replicas = 0,
  nodeTimeoutMs = 2000,
}: {
  masters?: number;
  replicas?: number;
  nodeTimeoutMs?: number;
} = {}): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'caretkv-redis-cluster-'));
  const host = '127.0.0.1';
  const nodes: ClusterNode[] = [];
  const cli = async (port: number, ...args: string[]): Promise<string> =>
    (await run('redis-cli', ['-h', host, '-p', String(port), ...args])).stdout.trim();
  const stop = async (): Promise<void> => {
    await Promise.all(
      nodes.map(
        ({ process: child }) =>
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
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const port = await freePort();
      // The bus port is set explicitly: port + 10000 (Redis's default) may be past 65535.
      const busPort = await freePort();
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--cluster-port',
          String(busPort),
          '--bind',
          host,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          String(nodeTimeoutMs),
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { stdio: 'ignore' },
      );
      nodes.push({ host, port, process: child });
    }
    for (const node of nodes) {
      await waitFor(
        async () => {
          try {
            return (await cli(node.port, 'PING')) === 'PONG';
          } catch {
            return false;
          }
        },
        { message: `redis-server on ${node.port} to answer`, intervalMs: 50 },
      );
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((n) => `${host}:${n.port}`),
      '--cluster-replicas',
      String(replicas),
      '--cluster-yes',
    ]);
    for (const node of nodes) {
      await waitFor(
        async () => {
          const info = await cli(node.port, 'CLUSTER', 'INFO');
          return info.includes('cluster_state:ok') && info.includes('cluster_slots_ok:16384');
        },
        { message: `node ${node.port} to see the cluster ready`, timeoutMs: 20_000, intervalMs: 50 },
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, seeds: nodes.map(({ host: h, port }) => ({ host: h, port })), cli, stop };
}

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** One standalone redis-server (no persistence), ready once it answers PING. */
export async function startRedisServer(): Promise<RedisServer> {
  const host = '127.0.0.1';
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const stop = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  try {
    await waitFor(
      async () => {
        try {
          return (await run('redis-cli', ['-h', host, '-p', String(port), 'PING'])).stdout.trim() === 'PONG';
        } catch {
          return false;
        }
      },
      { message: `redis-server on ${port} to answer`, intervalMs: 50 },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, port, stop };
}
