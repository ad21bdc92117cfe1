/**
 * Storage engines by name: the `store` setting picks one, the composition root asks here for it.
 * A setting is an engine name (`memory`) or a URL whose scheme names the engine
 * (`redis-cluster://host:port,host:port`), so engines that need an address take it from the same
 * setting. The in-memory engine is the embedded default; new engines register here.
 *
 *   memory                              in process (with --data-dir: its append-only log)
 *   redis-cluster://host:port,...       a Redis Cluster (or Valkey cluster): any nodes to start from
 *   redis://host:port                   a single Redis server
 */
import { createRequire } from 'node:module';
import type IORedis from 'ioredis';
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
      check: (target) => addressProblem('redis-cluster', target, true),
      create: (spec, deps) => redisEngine(spec.target, deps, true),
    },
  ],
  [
    'redis',
    {
      check: (target) => addressProblem('redis', target, false),
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

function redisEngine(target: string, { logger }: StoreDeps, cluster: boolean): Store {
  const { Cluster, Redis } = requireLazily('ioredis') as typeof IORedis;
  const seeds = addresses(target);
  const client = cluster
    ? new Cluster(seeds, {
        enableOfflineQueue: false,
        redisOptions: { commandTimeout: REDIS_COMMAND_TIMEOUT_MS },
      })
    : new Redis({ ...seeds[0]!, enableOfflineQueue: false, commandTimeout: REDIS_COMMAND_TIMEOUT_MS });
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
  return new RedisStore({ client });
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
