/**
 * A node's one subscribed connection to the Redis deployment (issue 16): the store's change events
 * and the pub/sub relay's channels both arrive here.
 *
 * Why not ioredis's own subscriber: a Cluster client resubscribes after a failover from channel
 * names it keeps as strings (unit-encoded names that are not UTF-8 would come back changed), and
 * neither client says when a subscribed connection was lost, so nobody could tell subscribers that
 * messages went missing. This connection is a plain client to any one node (a PUBLISH reaches
 * every node of a cluster, replicas included): it subscribes from this module's own list, again
 * on every (re)connection, and reports each loss once (`onLost`). When its node stays away it
 * moves on to another node the cluster client knows.
 */
import { createRequire } from 'node:module';
import type IORedis from 'ioredis';
import type { Cluster, Redis, RedisOptions } from 'ioredis';

// ioredis loads only when a Redis engine is created (the embedded default starts without it).
const requireLazily = createRequire(import.meta.url);

type Client = Redis | Cluster;
/** A delivery: the Redis channel it was published on, and its payload. */
export type FeedHandler = (channel: Buffer, message: Buffer) => void;

/** Reconnection attempts to one node before the feed tries the next one. */
const ATTEMPTS_PER_NODE = 3;
/** Delay between attempts (and before trying the next node). */
const RETRY_MS = 200;

interface Entry {
  readonly name: Buffer;
  readonly glob: boolean;
}

export class RedisFeed {
  readonly #client: Client;
  readonly #entries = new Map<string, Entry>();
  readonly #handlers: FeedHandler[] = [];
  readonly #lost: (() => void)[] = [];
  #connection: Redis | undefined;
  /** Which candidate to try next: nodes start at a random one, so they spread over Redis's nodes. */
  #node = Math.floor(Math.random() * 1024);
  #closed = false;
  /** Subscribed once (and after each reconnection): losses before the first one are not losses. */
  #live = false;
  #retry: NodeJS.Timeout | undefined;
  #firstReady!: () => void;
  /** Resolves when the feed has subscribed for the first time. */
  readonly ready: Promise<void>;

  constructor(client: Client) {
    this.#client = client;
    this.ready = new Promise((resolve) => {
      this.#firstReady = resolve;
    });
    // A cluster client learns the nodes once ready; a standalone one's address is known now.
    if (client.isCluster && client.status !== 'ready') {
      client.once('ready', () => this.#connect());
    } else {
      this.#connect();
    }
  }

  /** Hears every delivery (exact and pattern subscriptions alike, once per matching subscription). */
  onMessage(handler: FeedHandler): void {
    this.#handlers.push(handler);
  }

  /** Told each time the subscribed connection is lost (deliveries may be missing from then on). */
  onLost(listener: () => void): void {
    this.#lost.push(listener);
  }

  /**
   * Subscribes to a channel (glob false) or a pattern (glob true); idempotent. While connected, the
   * promise resolves once Redis has confirmed it (deliveries from then on arrive); otherwise the
   * subscription is made on the next connection and nothing is returned.
   */
  subscribe(name: Buffer, glob: boolean): Promise<void> | undefined {
    const id = entryId(name, glob);
    if (this.#entries.has(id)) return undefined;
    this.#entries.set(id, { name, glob });
    if (this.#connection?.status !== 'ready') return undefined;
    return this.#send(glob ? 'psubscribe' : 'subscribe', [name]);
  }

  unsubscribe(name: Buffer, glob: boolean): void {
    if (!this.#entries.delete(entryId(name, glob))) return;
    if (this.#connection?.status === 'ready') this.#send(glob ? 'punsubscribe' : 'unsubscribe', [name]);
  }

  /** Whether it is subscribed now (false from a loss until it has subscribed again). */
  get live(): boolean {
    return this.#live;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    const connection = this.#connection;
    this.#connection = undefined;
    if (connection === undefined) return;
    try {
      await connection.quit();
    } catch {
      connection.disconnect();
    }
  }

  /** Where to connect: the nodes the cluster client knows now, or the one server. */
  #candidates(): Pick<RedisOptions, 'host' | 'port' | 'username' | 'password'>[] {
    if (!this.#client.isCluster) return [(this.#client as Redis).options];
    return (this.#client as Cluster).nodes('all').map((node) => node.options);
  }

  #connect(): void {
    if (this.#closed) return;
    const candidates = this.#candidates();
    if (candidates.length === 0) {
      this.#later();
      return;
    }
    const at = candidates[this.#node++ % candidates.length]!;
    const { Redis: RedisClient } = requireLazily('ioredis') as typeof IORedis;
    const connection: Redis = new RedisClient({
      host: at.host,
      port: at.port,
      username: at.username,
      password: at.password,
      autoResubscribe: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: null,
      connectionName: 'caretkv-feed',
      retryStrategy: (times: number) => (times > ATTEMPTS_PER_NODE ? null : RETRY_MS),
    });
    this.#connection = connection;
    // Failures are the client's: whoever listens to the client (a logger) hears them.
    connection.on('error', (err: Error) => this.#client.emit('error', err));
    connection.on('messageBuffer', (channel: Buffer, message: Buffer) => this.#deliver(channel, message));
    connection.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) =>
      this.#deliver(channel, message),
    );
    connection.on('ready', () => this.#subscribeAll(connection));
    connection.on('close', () => {
      if (!this.#live || this.#closed) return;
      this.#live = false;
      for (const listener of this.#lost) listener();
    });
    connection.on('end', () => {
      if (this.#closed || this.#connection !== connection) return;
      // This node stays away: try the next one the client knows.
      this.#later();
    });
  }

  #later(): void {
    this.#retry = setTimeout(() => this.#connect(), RETRY_MS);
    this.#retry.unref();
  }

  #subscribeAll(connection: Redis): void {
    const exact: Buffer[] = [];
    const globs: Buffer[] = [];
    for (const { name, glob } of this.#entries.values()) (glob ? globs : exact).push(name);
    const work: Promise<unknown>[] = [];
    if (exact.length > 0) work.push(connection.subscribe(...(exact as unknown as string[])));
    if (globs.length > 0) work.push(connection.psubscribe(...(globs as unknown as string[])));
    Promise.all(work).then(
      () => {
        if (this.#connection !== connection || connection.status !== 'ready') return;
        this.#live = true;
        this.#firstReady();
      },
      // The connection failed meanwhile: its close starts the next attempt, which subscribes again.
      () => {},
    );
  }

  #send(
    command: 'subscribe' | 'psubscribe' | 'unsubscribe' | 'punsubscribe',
    names: Buffer[],
  ): Promise<void> | undefined {
    // A failure means the connection is going: the next one subscribes from the list.
    return this.#connection?.[command](...(names as unknown as string[])).then(
      () => {},
      () => {},
    );
  }

  #deliver(channel: Buffer, message: Buffer): void {
    for (const handler of this.#handlers) handler(channel, message);
  }
}

function entryId(name: Buffer, glob: boolean): string {
  return (glob ? 'p' : 's') + name.toString('latin1');
}
