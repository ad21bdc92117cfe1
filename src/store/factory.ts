/**
 * Storage engines by name: the `store` setting picks one, the composition root asks here for it.
 * A setting is an engine name (`memory`) or a URL whose scheme names the engine
 * (`redis-cluster://host:port,host:port`), so engines that need an address take it from the same
 * setting. The in-memory engine is the embedded default; new engines register here.
 */
import { type DurableLogger, DurableStore } from './durable/durable.js';
import type { FsyncPolicy } from './durable/writer.js';
import { MemoryStore } from './memory.js';
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

type EngineFactory = (spec: StoreSpec, deps: StoreDeps) => Store;

const ENGINES: ReadonlyMap<string, EngineFactory> = new Map<string, EngineFactory>([
  ['memory', (_spec, deps) => memoryEngine(deps)],
]);

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
  if (!ENGINES.has(engine)) return `unknown storage engine "${engine}" (known engines: ${known})`;
  return { engine, target: m[2] ?? '' };
}

/** A new store for a valid `store` setting (the config has checked it with parseStoreSpec). */
export function createStore(text: string, deps: StoreDeps): Store {
  const spec = parseStoreSpec(text);
  if (typeof spec === 'string') throw new Error(`store: ${spec}`);
  return ENGINES.get(spec.engine)!(spec, deps);
}
