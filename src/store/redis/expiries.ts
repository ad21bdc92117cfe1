/**
 * Redis's own expiries, heard as they happen (issue 16): a key whose TTL runs out is deleted by the
 * Redis node that holds it, which tells only its own clients (keyspace notifications do not cross
 * the cluster bus). So this keeps one subscribed connection per node of the deployment to
 * `__keyevent@0__:expired`, with notifications switched on there (`notify-keyspace-events` gains
 * `E` and `x`; other flags are kept), and hands each expired key of this deployment to the engine,
 * whose purge then tidies the namespace's indexes and tells every node (`expire` changes).
 *
 * Topology: the node list is read again every few seconds and whenever the cluster client learns
 * of a node, so a replica promoted by a failover is heard too (replicas are watched from the
 * start: they send nothing until they are masters). A node that cannot be reached, or refuses
 * CONFIG SET (a managed Redis), costs only promptness: a read that misses a key, a listing and
 * a count purge its namespace first anyway.
 */
import { createRequire } from 'node:module';
import type IORedis from 'ioredis';
import type { Cluster, Redis } from 'ioredis';

// ioredis loads only when a Redis engine is created (the embedded default starts without it).
const requireLazily = createRequire(import.meta.url);

const EXPIRED = '__keyevent@0__:expired';
/** How often the node list is read again (a failover also triggers a read). */
const RESCAN_MS = 2000;

export class ExpiryWatch {
  readonly #client: Redis | Cluster;
  readonly #prefix: Buffer;
  readonly #onExpired: (key: Buffer) => void;
  readonly #connections = new Map<string, Redis>();
  readonly #timer: NodeJS.Timeout;
  #closed = false;

  /** `onExpired` gets each expired Redis key that starts with `prefix`. */
  constructor(client: Redis | Cluster, prefix: Buffer, onExpired: (key: Buffer) => void) {
    this.#client = client;
    this.#prefix = prefix;
    this.#onExpired = onExpired;
    this.#timer = setInterval(() => this.#scan(), RESCAN_MS);
    this.#timer.unref();
    if (client.isCluster) {
      client.on('+node', () => this.#scan());
      client.on('ready', () => this.#scan());
    }
    this.#scan();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const all = [...this.#connections.values()];
    this.#connections.clear();
    await Promise.all(
      all.map(async (connection) => {
        try {
          await connection.quit();
        } catch {
          connection.disconnect();
        }
      }),
    );
  }

  #scan(): void {
    if (this.#closed) return;
    const known = this.#client.isCluster
      ? (this.#client as Cluster).nodes('all').map((node) => node.options)
      : [(this.#client as Redis).options];
    const wanted = new Set<string>();
    for (const options of known) {
      const id = `${options.host}:${options.port}`;
      wanted.add(id);
      if (!this.#connections.has(id)) this.#connections.set(id, this.#watch(options));
    }
    // Nodes that left the cluster (a cluster client that knows none yet keeps what it has).
    if (known.length === 0) return;
    for (const [id, connection] of this.#connections) {
      if (wanted.has(id)) continue;
      this.#connections.delete(id);
      connection.disconnect();
    }
  }

  #watch(options: Redis['options']): Redis {
    const { Redis: RedisClient } = requireLazily('ioredis') as typeof IORedis;
    const connection = new RedisClient({
      host: options.host,
      port: options.port,
      username: options.username,
      password: options.password,
      connectionName: 'caretkv-expiries',
      maxRetriesPerRequest: null,
      // Each (re)connection switches events on first: a restarted node has forgotten CONFIG SET.
      autoResubscribe: false,
    });
    // An unreachable node is the cluster client's to report; here it only delays expiry events.
    connection.on('error', () => {});
    connection.on('ready', () => {
      void this.#enable(connection);
    });
    connection.on('messageBuffer', (_channel: Buffer, key: Buffer) => {
      const prefix = this.#prefix;
      if (key.length > prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0) {
        this.#onExpired(key);
      }
    });
    return connection;
  }

  /** Switches expired-key events on at that node (keeping its other flags) and subscribes. */
  async #enable(connection: Redis): Promise<void> {
    try {
      const [, flags = ''] = (await connection.config('GET', 'notify-keyspace-events')) as string[];
      let next = flags;
      // `A` already includes `x`; `K` or `E` must be there for any event to go out.
      if (!next.includes('E')) next += 'E';
      if (!next.includes('x') && !next.includes('A')) next += 'x';
      if (next !== flags) await connection.config('SET', 'notify-keyspace-events', next);
    } catch {
      // Refused (a managed Redis without CONFIG): purges on reads, listings and counts remain.
    }
    if (connection.status === 'ready') await connection.subscribe(EXPIRED).catch(() => {});
  }
}
