/**
 * Throwaway Redis servers on loopback for tests. `startRedisCluster`: `masters` redis-server
 * processes (plus `replicas` per master) in a temp dir, joined with `redis-cli --cluster create`,
 * ready once every node reports cluster_state:ok with all 16384 slots assigned (and, with
 * replicas, once every master has its replicas online). A test can SIGKILL a node and start it
 * again on the same port and directory (it rejoins: a master that was failed over comes back as
 * a replica of whoever took over), and ask which node serves a slot. `startRedisServer`: one
 * standalone server. Debian's redis-server package brings both binaries; .ci/run installs it.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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
  /** The running redis-server (a new one after `restart`). */
  readonly process: ChildProcess;
}

/** One line of CLUSTER NODES, as one node sees the cluster. */
export interface NodeView {
  readonly id: string;
  readonly port: number;
  readonly master: boolean;
  /** The master's id, for a replica. */
  readonly masterId: string | undefined;
  /** Flagged `fail` (or `fail?`: suspected) by the node asked. */
  readonly failing: boolean;
  /** Slot ranges served, inclusive (a master's). */
  readonly slots: readonly (readonly [number, number])[];
}

export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** `host:port` of every node, for a client's start-up list. */
  readonly seeds: readonly { host: string; port: number }[];
  /** One redis-cli command against one node, its output trimmed. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** SIGKILLs one node; resolves once it has exited. */
  kill(port: number): Promise<void>;
  /**
   * Starts a killed node again with the same port, bus port and directory (its nodes.conf), so it
   * rejoins; resolves once it answers PING (use `ready()` to wait until it has synced).
   */
  restart(port: number): Promise<void>;
  /** The cluster as a node sees it (CLUSTER NODES), by default the first live one. */
  topology(via?: number): Promise<NodeView[]>;
  /** The port of the master serving `slot` as a node sees it (by default the first live one). */
  masterOf(slot: number, via?: number): Promise<number | undefined>;
  /** The ports of the masters that serve slots, as a node sees it. */
  masters(via?: number): Promise<number[]>;
  /** The slot of a Redis key (CLUSTER KEYSLOT), e.g. of a hash tag `{users}`. */
  slotOf(key: string): Promise<number>;
  /**
   * Resolves once every live node says cluster_state:ok, all live nodes agree on which live master
   * serves each slot, and every master has `replicas` replicas online, past their initial sync (by
   * default as many as the cluster was created with).
   */
  ready(options?: { replicas?: number; timeoutMs?: number }): Promise<void>;
  /** Kills every node and removes their files. */
  stop(): Promise<void>;
}

/** Parses CLUSTER NODES: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`. */
export function parseClusterNodes(text: string): NodeView[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id, address, flags, master, , , , , ...slots] = line.trim().split(' ');
      const flagList = flags!.split(',');
      return {
        id: id!,
        port: Number(/:(\d+)@/.exec(address!)![1]),
        master: flagList.includes('master'),
        masterId: master === '-' ? undefined : master,
        failing: flagList.includes('fail') || flagList.includes('fail?'),
        slots: slots
          .filter((slot) => !slot.startsWith('['))
          .map((slot) => {
            const [from, to] = slot.split('-');
            return [Number(from), Number(to ?? from)] as const;
          }),
      };
    });
}

const alive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

function killed(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!alive(child)) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

export async function startRedisCluster({
  masters = 3,
  replicas = 0,
  nodeTimeoutMs = 2000,
}: {
  masters?: number;
  replicas?: number;
  /** cluster-node-timeout: how long a master may not answer before its replica takes over. */
  nodeTimeoutMs?: number;
} = {}): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'caretkv-redis-cluster-'));
  const host = '127.0.0.1';
  const nodes: { host: string; port: number; busPort: number; process: ChildProcess }[] = [];
  const cli = async (port: number, ...args: string[]): Promise<string> =>
    (await run('redis-cli', ['-h', host, '-p', String(port), ...args])).stdout.trim();
  const nodeAt = (port: number) => {
    const node = nodes.find((n) => n.port === port);
    if (node === undefined) throw new Error(`no node of this cluster listens on ${port}`);
    return node;
  };
  /** A redis-server for a node: its own directory (a replica's sync writes dump.rdb there). */
  const spawnNode = (port: number, busPort: number): ChildProcess => {
    const home = join(dir, String(port));
    mkdirSync(home, { recursive: true });
    return spawn(
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
        join(home, 'nodes.conf'),
        '--cluster-node-timeout',
        String(nodeTimeoutMs),
        '--dir',
        home,
        '--logfile',
        join(home, 'redis.log'),
        '--save',
        '',
        '--appendonly',
        'no',
        // A master sends a (re)joining replica its data at once, not after the default 5 s wait
        // for more replicas to share the transfer.
        '--repl-diskless-sync-delay',
        '0',
      ],
      { stdio: 'ignore' },
    );
  };
  const answers = (port: number): Promise<void> =>
    waitFor(
      async () => {
        try {
          return (await cli(port, 'PING')) === 'PONG';
        } catch {
          return false;
        }
      },
      { message: `redis-server on ${port} to answer`, intervalMs: 50 },
    );
  const live = () => nodes.filter((n) => alive(n.process));
  const firstLive = (): number => {
    const node = live()[0];
    if (node === undefined) throw new Error('every node of the cluster is down');
    return node.port;
  };
  const topology = async (via?: number): Promise<NodeView[]> =>
    parseClusterNodes(await cli(via ?? firstLive(), 'CLUSTER', 'NODES'));
  const masterOf = async (slot: number, via?: number): Promise<number | undefined> =>
    (await topology(via)).find((n) => n.master && n.slots.some(([a, b]) => slot >= a && slot <= b))?.port;
  const mastersOf = async (via?: number): Promise<number[]> =>
    (await topology(via)).filter((n) => n.master && n.slots.length > 0).map((n) => n.port);
  /** Whether one master has `want` replicas online: past their initial sync, streaming its writes. */
  const replicated = async (port: number, want: number): Promise<boolean> => {
    const info = await cli(port, 'INFO', 'replication');
    return [...info.matchAll(/^slave\d+:.*state=online/gm)].length >= want;
  };
  const ready = async ({
    replicas: want = replicas,
    timeoutMs = 30_000,
  }: {
    replicas?: number;
    timeoutMs?: number;
  } = {}): Promise<void> => {
    await waitFor(
      async () => {
        try {
          const up = live();
          const ports = new Set(up.map((n) => n.port));
          let agreed: string | undefined;
          for (const node of up) {
            const info = await cli(node.port, 'CLUSTER', 'INFO');
            if (!info.includes('cluster_state:ok') || !info.includes('cluster_slots_ok:16384')) return false;
            const view = await topology(node.port);
            const owners = view
              .filter((n) => n.master && n.slots.length > 0)
              .map((n) => `${n.port}:${n.slots.map(([a, b]) => `${a}-${b}`).join(',')}`)
              .sort()
              .join(' ');
            if (agreed !== undefined && owners !== agreed) return false;
            agreed = owners;
            if (view.some((n) => n.master && n.slots.length > 0 && (n.failing || !ports.has(n.port))))
              return false;
          }
          if (want === 0) return true;
          for (const port of await mastersOf()) if (!(await replicated(port, want))) return false;
          // Each replica's side too: linked and done loading what its master sent.
          for (const node of up) {
            const info = await cli(node.port, 'INFO', 'replication');
            if (info.includes('role:slave')) {
              if (!info.includes('master_link_status:up') || info.includes('master_sync_in_progress:1'))
                return false;
            }
          }
          return true;
        } catch {
          return false; // a node restarting, or not yet in the cluster
        }
      },
      { message: 'the cluster to be ready (every slot served, replicas in sync)', timeoutMs, intervalMs: 50 },
    );
  };
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => killed(node.process)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Every port picked before any node starts (one that has not bound its ports yet would let
    // freePort hand them out again). The bus port is explicit: port + 10000 may be past 65535.
    const ports = new Set<number>();
    while (ports.size < 2 * masters * (1 + replicas)) ports.add(await freePort());
    const picked = [...ports];
    for (let i = 0; i < picked.length; i += 2) {
      nodes.push({
        host,
        port: picked[i]!,
        busPort: picked[i + 1]!,
        process: spawnNode(picked[i]!, picked[i + 1]!),
      });
    }
    for (const node of nodes) await answers(node.port);
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((n) => `${host}:${n.port}`),
      '--cluster-replicas',
      String(replicas),
      '--cluster-yes',
    ]);
    await ready();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    nodes,
    seeds: nodes.map(({ host: h, port }) => ({ host: h, port })),
    cli,
    kill: (port) => killed(nodeAt(port).process),
    restart: async (port) => {
      const node = nodeAt(port);
      if (alive(node.process)) throw new Error(`node ${port} is still running`);
      node.process = spawnNode(node.port, node.busPort);
      await answers(node.port);
    },
    topology,
    masterOf,
    masters: mastersOf,
    slotOf: async (key) => Number(await cli(firstLive(), 'CLUSTER', 'KEYSLOT', key)),
    ready,
    stop,
  };
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
  const stop = (): Promise<void> => killed(child);
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
