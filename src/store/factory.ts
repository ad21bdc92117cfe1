/**
 * Storage engines by name: the `store` setting picks one, the composition root asks here for it.
 * A setting is an engine name (`memory`) or a URL whose scheme names the engine
 * (`redis-cluster://host:port,host:port`), so engines that need an address take it from the same
 * setting. The in-memory engine is the embedded default; new engines register here.
 *
 *   memory                              in process (with --data-dir: its append-only log)
 *   redis-cluster://host:port,...       a Redis Cluster (or Valkey cluster): any nodes to start from
 *   redis://host:port                   a single Redis server
 *
 * Either Redis URL may end in `?wait=N` (each write waits until N replicas have it, Redis `WAIT`)
 * and `&wait-timeout=ms` (how long it waits, default 1000): see RedisStoreOptions.wait.
 */
import { createRequire } from 'node:module';
import type IORedis from 'ioredis';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import { type DurableLogger, DurableStore } from './durable/durable.js';
import type { FsyncPolicy } from './durable/writer.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis/engine.js';
import type { Store } from './store.js';

/** Persistence for the memory engine (`--data-dir` and its companions). */
export interface PersistenceSettings {
  readonly dataDir: string;
  readonly appendfsync: FsyncPolicy;
  readonly rewritePercentage: number;
  readonly rewriteMinSize: number;
}

export interface StoreDeps {
  readonly logger: DurableLogger;
  /** Given, the memory engine keeps an append-only log there (and replays it now). */
  readonly persistence?: PersistenceSettings;
}

/** A parsed `store` setting: the engine and what follows `scheme://` (empty for `memory`). */
export interface StoreSpec {
  readonly engine: string;
  readonly target: string;
}

interface Engine {
  /** What is wrong with the part after `scheme://` (or with one given to an engine that takes none). */
  check(target: string): string | undefined;
  create(spec: StoreSpec, deps: StoreDeps): Store;
}

const ENGINES: ReadonlyMap<string, Engine> = new Map<string, Engine>([
  [
    'memory',
    {
      check: (target) =>
        target === '' ? undefined : 'the memory engine takes no address (give just "memory")',
      create: (_spec, deps) => memoryEngine(deps),
    },
  ],
  [
    'redis-cluster',
    {
      check: (target) => problemOf(redisTarget('redis-cluster', target, true)),
      create: (spec, deps) => redisEngine(spec.target, deps, true),
    },
  ],
  [
    'redis',
    {
      check: (target) => problemOf(redisTarget('redis', target, false)),
      create: (spec, deps) => redisEngine(spec.target, deps, false),
    },
  ],
]);

/** `host:port` pairs, comma-separated (one for redis://). */
function addresses(target: string): { host: string; port: number }[] {
  return target.split(',').map((part) => {
    const at = part.lastIndexOf(':');
    return { host: part.slice(0, at), port: Number(part.slice(at + 1)) };
  });
}

function addressProblem(engine: string, target: string, several: boolean): string | undefined {
  const shape = several ? 'host:port[,host:port...]' : 'host:port';
  const list = target === '' ? [] : addresses(target);
  const ok =
    list.length > 0 &&
    (several || list.length === 1) &&
    list.every(({ host, port }) => host !== '' && Number.isInteger(port) && port > 0 && port < 65536);
  return ok ? undefined : `${engine}:// needs ${shape} (got ${JSON.stringify(target)})`;
}

/** What a redis:// or redis-cluster:// URL says after `scheme://`. */
interface RedisTarget {
  readonly seeds: { host: string; port: number }[];
  /** `?wait=N` (N > 0), with `&wait-timeout=ms` or its default. */
  readonly wait?: { readonly replicas: number; readonly timeoutMs: number };
}

const WAIT_TIMEOUT_DEFAULT_MS = 1000;
const WAIT_TIMEOUT_MAX_MS = 60_000;
const WAIT_REPLICAS_MAX = 100;

/** The addresses and parameters of a Redis URL's target, or what is wrong with it. */
function redisTarget(engine: string, target: string, several: boolean): RedisTarget | string {
  const q = target.indexOf('?');
  const hosts = q === -1 ? target : target.slice(0, q);
  const problem = addressProblem(engine, hosts, several);
  if (problem !== undefined) return problem;
  const given = new Map<string, string>();
  for (const pair of q === -1 ? [] : target.slice(q + 1).split('&')) {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    if (name !== 'wait' && name !== 'wait-timeout')
      return `${engine}:// takes the parameters wait and wait-timeout (got ${JSON.stringify(name)})`;
    if (given.has(name)) return `${engine}://: ${name} is given twice`;
    given.set(name, eq === -1 ? '' : pair.slice(eq + 1));
  }
  const integer = (text: string | undefined, min: number, max: number): number | undefined => {
    const n = text !== undefined && /^[0-9]{1,9}$/.test(text) ? Number(text) : Number.NaN;
    return n >= min && n <= max ? n : undefined;
  };
  const replicas = integer(given.get('wait') ?? '0', 0, WAIT_REPLICAS_MAX);
  if (replicas === undefined) {
    return `${engine}://: wait must be how many replicas acknowledge each write, an integer from 0 to ${WAIT_REPLICAS_MAX} (got ${JSON.stringify(given.get('wait'))})`;
  }
  const timeoutText = given.get('wait-timeout');
  const timeoutMs = integer(timeoutText ?? String(WAIT_TIMEOUT_DEFAULT_MS), 1, WAIT_TIMEOUT_MAX_MS);
  if (timeoutMs === undefined) {
    return `${engine}://: wait-timeout must be milliseconds, an integer from 1 to ${WAIT_TIMEOUT_MAX_MS} (got ${JSON.stringify(timeoutText)})`;
  }
  if (timeoutText !== undefined && !given.has('wait'))
    return `${engine}://: wait-timeout needs wait=N (how many replicas each write waits for)`;
  const seeds = addresses(hosts);
  return replicas === 0 ? { seeds } : { seeds, wait: { replicas, timeoutMs } };
}

function problemOf(parsed: RedisTarget | string): string | undefined {
  return typeof parsed === 'string' ? parsed : undefined;
}

/**
 * How long a Redis command may take before it answers UNAVAILABLE. Without an offline queue a
 * command fails at once while the client is not connected, instead of waiting for a backend that
 * may not come back; the client keeps reconnecting meanwhile.
 */
const REDIS_COMMAND_TIMEOUT_MS = 2000;
/** A backend that stays down is logged this often at most. */
const REDIS_ERROR_LOG_INTERVAL_MS = 10_000;

// ioredis loads only when a Redis engine is asked for: the embedded default starts without it.
const requireLazily = createRequire(import.meta.url);

/**
 * The client options of the Redis engines (the cluster ones are exported for the tests that cut
 * connections).
 *
 * A command whose connection dropped before its reply may have run: it fails (UNAVAILABLE: it
 * may or may not have taken effect) rather than being sent again, which would apply an INCR,
 * a CAS or a DROP step twice. ioredis sends it again by default after reconnecting
 * (autoResendUnfulfilledCommands). A cluster client also retries a command refused with
 * "Connection is closed": safe for one never sent (a node's connection not up yet), but a node
 * connection without a retry strategy ends when its socket drops and flushes the commands in
 * flight with that same error; with one, it reconnects and aborts them instead (not retried).
 * Redirections (MOVED, ASK) and TRYAGAIN/CLUSTERDOWN are still followed: those did not run.
 */
function redisServerOptions(commandTimeout: number): RedisOptions {
  return { enableOfflineQueue: false, commandTimeout, autoResendUnfulfilledCommands: false };
}

/** The same for a cluster client, whose node connections also reconnect (see redisServerOptions). */
export function redisClusterOptions(commandTimeout: number): ClusterOptions {
  return {
    enableOfflineQueue: false,
    clusterNodeRetryStrategy: (times: number) => Math.min(times * 100, 2000),
    redisOptions: { commandTimeout, autoResendUnfulfilledCommands: false },
  };
}

function redisEngine(target: string, { logger }: StoreDeps, cluster: boolean): Store {
  const { Cluster, Redis } = requireLazily('ioredis') as typeof IORedis;
  const parsed = redisTarget(cluster ? 'redis-cluster' : 'redis', target, cluster);
  if (typeof parsed === 'string') throw new Error(`store: ${parsed}`);
  const { seeds, wait } = parsed;
  // A write's WAIT may block for wait-timeout by design: the timeout counts from when it is sent.
  const commandTimeout = REDIS_COMMAND_TIMEOUT_MS + (wait?.timeoutMs ?? 0);
  const client = cluster
    ? new Cluster(seeds, redisClusterOptions(commandTimeout))
    : new Redis({ ...seeds[0]!, ...redisServerOptions(commandTimeout) });
  let lastLogged = 0;
  let failing = false;
  client.on('error', (err: Error) => {
    const now = Date.now();
    if (!failing || now - lastLogged >= REDIS_ERROR_LOG_INTERVAL_MS) {
      logger.error({ err, target }, 'the Redis backend fails: requests answer UNAVAILABLE meanwhile');
      lastLogged = now;
    }
    failing = true;
  });
  client.on('ready', () => {
    if (failing) logger.info({ target }, 'the Redis backend is back');
    failing = false;
  });
  return new RedisStore({ client, ...(wait !== undefined && { wait }) });
}

function memoryEngine({ logger, persistence }: StoreDeps): Store {
  if (persistence === undefined) return new MemoryStore({ logger });
  return new DurableStore({
    dir: persistence.dataDir,
    appendfsync: persistence.appendfsync,
    rewritePercentage: persistence.rewritePercentage,
    rewriteMinBytes: persistence.rewriteMinSize,
    logger,
  });
}

export const STORE_ENGINES: readonly string[] = [...ENGINES.keys()];

/** The engine and target of a `store` setting, or a message saying what is wrong with it. */
export function parseStoreSpec(text: string): StoreSpec | string {
  const m = /^([a-z][a-z0-9+.-]*)(?::\/\/(.*))?$/.exec(text);
  const known = STORE_ENGINES.join(', ');
  if (m === null) return `must be an engine name or an engine URL (known engines: ${known})`;
  const engine = m[1]!;
  const found = ENGINES.get(engine);
  if (found === undefined) return `unknown storage engine "${engine}" (known engines: ${known})`;
  const target = m[2] ?? '';
  return found.check(target) ?? { engine, target };
}

/** A new store for a valid `store` setting (the config has checked it with parseStoreSpec). */
export function createStore(text: string, deps: StoreDeps): Store {
  const spec = parseStoreSpec(text);
  if (typeof spec === 'string') throw new Error(`store: ${spec}`);
  return ENGINES.get(spec.engine)!.create(spec, deps);
}
