import type { ActionName, Request, RequestOf, ResultOf } from '../protocol/schema.js';
import { ClientCore, type RawRequest } from './core.js';
import { CaretError, clientError } from './errors.js';
import type { ClientOptions } from './options.js';
import { PubSubHub } from './pubsub.js';
import {
  Subscription,
  type SubscriptionChange,
  type SubscriptionMessage,
  type SubscriptionOptions,
} from './subscription.js';

/**
 * The fields an action takes besides the ones a method passes positionally. Derived from the
 * server's schema, so a new option on the server shows up here without being written twice.
 */
type OptionsOf<A extends ActionName, Positional extends string = never> = Omit<
  RequestOf<A>,
  'action' | 'id' | Positional
>;

export type SetOptions = OptionsOf<'SET', 'key' | 'value'>;
/** `{ namespace }`: the key is relative to it (`namespace: 'users'`, key `42` is `users^42`). */
export type KeyOptions = OptionsOf<'GET', 'key'>;
export type KeysOptions = OptionsOf<'KEYS'>;
export type NamespacesOptions = OptionsOf<'NAMESPACES'>;
export type Info = ResultOf<'INFO'>;
export type Page<Field extends string> = { [F in Field]: string[] } & { next: string | null };

/** MSET entries: a plain object, a Map, or any iterable of [key, value] pairs. */
export type Entries = Readonly<Record<string, unknown>> | Iterable<readonly [string, unknown]>;

/**
 * A caretkv connection with one typed method per action. Every method returns a promise that
 * resolves with the action's result, or rejects with a `CaretError` whose `code` is a protocol
 * code (KEY_NOT_FOUND, WRONG_TYPE, ...) or a client code (TIMEOUT, CONNECTION_LOST, ...).
 *
 * Requests made in the same tick go out in one write and are matched to responses in order, so
 * `await Promise.all(keys.map((k) => db.get(k)))` costs one round trip, not one per key.
 */
export class CaretClient extends ClientCore {
  readonly #pubsub: PubSubHub;
  #closeCalled = false;

  constructor(urlOrOptions?: string | ClientOptions, options?: ClientOptions) {
    super(urlOrOptions, options);
    const hub = new PubSubHub(this);
    this.#pubsub = hub;
    this.on('connect', hub.onConnect);
    this.on('close', hub.onClose);
    this.on('push', hub.onPush);
    this.on('end', () => {
      // Subscriptions the caller did not end through close() end with the reason the client gave up.
      if (!this.#closeCalled) {
        hub.endAll(clientError('CONNECTION_CLOSED', undefined, undefined, 'the client stopped reconnecting'));
      }
    });
    // After AUTH (registered by the core first), so a reconnect re-authenticates, then resubscribes.
    this.addHandshake(hub.handshake);
  }

  override close(): Promise<void> {
    this.#closeCalled = true;
    this.#pubsub.endAll();
    return super.close();
  }

  override destroy(): void {
    this.#closeCalled = true;
    this.#pubsub.endAll();
    super.destroy();
  }

  /**
   * Send any request, typed when it is a known action. `action` is case-insensitive on the wire;
   * the result type is inferred only from the upper-case name.
   */
  override send<R extends Request>(request: R): Promise<ResultOf<R['action']>>;
  override send<T = unknown>(request: RawRequest): Promise<T>;
  override send(request: RawRequest): Promise<unknown> {
    return this.request(request, false);
  }

  /** `"PONG"`. */
  ping(): Promise<ResultOf<'PING'>> {
    return this.request({ action: 'PING' }, false) as Promise<ResultOf<'PING'>>;
  }

  /** The value, unchanged (a round trip through the server's codec). */
  echo<T>(value: T): Promise<T> {
    return this.request({ action: 'ECHO', value }, false) as Promise<T>;
  }

  /**
   * Store `value` (any JSON value; `null` is a value). Resolves true when written, false when
   * `ifAbsent`/`ifPresent` prevented it. `ttl` is in milliseconds.
   */
  set(key: string, value: unknown, options?: SetOptions): Promise<ResultOf<'SET'>> {
    const req =
      options === undefined ? { action: 'SET', key, value } : { action: 'SET', key, value, ...options };
    return this.request(req, false) as Promise<ResultOf<'SET'>>;
  }

  /** The stored value; rejects with KEY_NOT_FOUND when there is none (see `getOr`). */
  get<T = ResultOf<'GET'>>(key: string, options?: KeyOptions): Promise<T> {
    return this.request(keyRequest('GET', key, options), false) as Promise<T>;
  }

  /** The stored value, or `fallback` when the key does not exist. Other errors still reject. */
  async getOr<T = ResultOf<'GET'>, F = T>(key: string, fallback: F, options?: KeyOptions): Promise<T | F> {
    try {
      return (await this.request(keyRequest('GET', key, options), false)) as T;
    } catch (err) {
      if (err instanceof CaretError && err.code === 'KEY_NOT_FOUND') return fallback;
      throw err;
    }
  }

  /** Remove a key; rejects with KEY_NOT_FOUND when there was none. */
  del(key: string, options?: KeyOptions): Promise<ResultOf<'DEL'>> {
    return this.request(keyRequest('DEL', key, options), false) as Promise<ResultOf<'DEL'>>;
  }

  exists(key: string, options?: KeyOptions): Promise<ResultOf<'EXISTS'>> {
    return this.request(keyRequest('EXISTS', key, options), false) as Promise<ResultOf<'EXISTS'>>;
  }

  /** Add `by` (default 1; may be negative) and resolve with the new number. A missing key starts at 0. */
  incr(key: string, by?: number, options?: KeyOptions): Promise<ResultOf<'INCR'>> {
    const req: RawRequest = keyRequest('INCR', key, options);
    if (by !== undefined) req.by = by;
    return this.request(req, false) as Promise<ResultOf<'INCR'>>;
  }

  /** Write `value` only if the current value deep-equals `expected`; resolves whether it did. */
  cas(key: string, expected: unknown, value: unknown, options?: KeyOptions): Promise<ResultOf<'CAS'>> {
    const req = { action: 'CAS', key, expected, value, ...options };
    return this.request(req, false) as Promise<ResultOf<'CAS'>>;
  }

  /** An object from each key that exists to its value; missing keys are absent (null is a value). */
  mget<T = unknown>(keys: readonly string[], options?: KeyOptions): Promise<Record<string, T>> {
    return this.request({ action: 'MGET', keys, ...options }, false) as Promise<Record<string, T>>;
  }

  /** Store several keys atomically (all or none). */
  mset(entries: Entries, options?: KeyOptions): Promise<ResultOf<'MSET'>> {
    const object = isIterable(entries) ? Object.fromEntries(entries) : entries;
    return this.request({ action: 'MSET', entries: object, ...options }, false) as Promise<ResultOf<'MSET'>>;
  }

  /** One page of the key names directly in a namespace (root when omitted), sorted. */
  keys(options?: KeysOptions): Promise<Page<'keys'>> {
    return this.request({ action: 'KEYS', ...options }, false) as Promise<Page<'keys'>>;
  }

  /** One page of the child namespace names of a namespace (root when omitted), sorted. */
  namespaces(options?: NamespacesOptions): Promise<Page<'namespaces'>> {
    return this.request({ action: 'NAMESPACES', ...options }, false) as Promise<Page<'namespaces'>>;
  }

  /**
   * Every key name directly in a namespace, following cursors page by page. Keys added or removed
   * while iterating never make a page skip or repeat a name that stays (the server pages by cursor).
   */
  scanKeys(namespace?: string, options: { pageSize?: number } = {}): AsyncIterableIterator<string> {
    return this.scan('keys', namespace, options.pageSize);
  }

  /** Every child namespace name of a namespace, following cursors page by page. */
  scanNamespaces(namespace?: string, options: { pageSize?: number } = {}): AsyncIterableIterator<string> {
    return this.scan('namespaces', namespace, options.pageSize);
  }

  /** How many keys a namespace holds, its sub-namespaces included (root when omitted). */
  count(namespace?: string): Promise<ResultOf<'COUNT'>> {
    const req: RawRequest = { action: 'COUNT' };
    if (namespace !== undefined) req.namespace = namespace;
    return this.request(req, false) as Promise<ResultOf<'COUNT'>>;
  }

  /** Remove a namespace and everything below it; resolves with how many keys went. */
  drop(namespace: string): Promise<ResultOf<'DROP'>> {
    return this.request({ action: 'DROP', namespace }, false) as Promise<ResultOf<'DROP'>>;
  }

  /** Set a key's time to live in milliseconds; rejects with KEY_NOT_FOUND when there is no key. */
  expire(key: string, ttl: number, options?: KeyOptions): Promise<ResultOf<'EXPIRE'>> {
    return this.request({ action: 'EXPIRE', key, ttl, ...options }, false) as Promise<ResultOf<'EXPIRE'>>;
  }

  /** Milliseconds left before a key expires, or null when it has no TTL. */
  ttl(key: string, options?: KeyOptions): Promise<ResultOf<'TTL'>> {
    return this.request(keyRequest('TTL', key, options), false) as Promise<ResultOf<'TTL'>>;
  }

  /** Remove a key's TTL; resolves whether there was one. */
  persist(key: string, options?: KeyOptions): Promise<ResultOf<'PERSIST'>> {
    return this.request(keyRequest('PERSIST', key, options), false) as Promise<ResultOf<'PERSIST'>>;
  }

  /**
   * Subscribe to channel patterns (`*` one segment, a final `>` one or more:
   * `db.subscribe('news^*', 'orders^eu^>')`). Returns at once; iterate the subscription, or listen
   * to its 'message' event, and await `sub.ready` to know the server holds it. See `Subscription`
   * for buffering, gaps, reconnects and how it ends. `db.subscribe(['a', 'b'], { highWaterMark,
   * signal })` passes options.
   */
  subscribe<T = unknown>(...patterns: string[]): Subscription<SubscriptionMessage<T>>;
  subscribe<T = unknown>(
    patterns: readonly string[],
    options?: SubscriptionOptions,
  ): Subscription<SubscriptionMessage<T>>;
  subscribe(...args: unknown[]): Subscription<SubscriptionMessage> {
    const [patterns, options] = subscriptionArgs('subscribe', args);
    return new Subscription(this.#pubsub, 'channels', patterns, options);
  }

  /**
   * Observe changes of keys matching patterns (`db.observe('users^>')`): each set, del, expire,
   * drop (of a namespace above), incr and cas arrives as a `change` item. Same shape as `subscribe`.
   */
  observe<T = unknown>(...patterns: string[]): Subscription<SubscriptionChange<T>>;
  observe<T = unknown>(
    patterns: readonly string[],
    options?: SubscriptionOptions,
  ): Subscription<SubscriptionChange<T>>;
  observe(...args: unknown[]): Subscription<SubscriptionChange> {
    const [patterns, options] = subscriptionArgs('observe', args);
    return new Subscription(this.#pubsub, 'keys', patterns, options);
  }

  /**
   * Publish `message` (any JSON value) on a channel; resolves with how many subscriptions it was
   * delivered to (at most once: 0 when nobody listens, and pushes a slow subscriber drops do not
   * count). Channels starting with `$` are the server's (NOPERM); over the server's publish rate
   * it rejects with RATE_LIMITED and the connection stays usable.
   */
  publish(channel: string, message: unknown): Promise<ResultOf<'PUBLISH'>> {
    return this.request({ action: 'PUBLISH', channel, message }, false) as Promise<ResultOf<'PUBLISH'>>;
  }

  /** Server statistics. */
  info(): Promise<Info> {
    return this.request({ action: 'INFO' }, false) as Promise<Info>;
  }

  /** Compacts the server's append-only log now (admin; PERSISTENCE_OFF without --data-dir). */
  rewrite(): Promise<ResultOf<'REWRITE'>> {
    return this.request({ action: 'REWRITE' }, false) as Promise<ResultOf<'REWRITE'>>;
  }

  /** Writes a consistent copy of the server's log under `<data-dir>/backups/` (admin); resolves to where. */
  backup(): Promise<ResultOf<'BACKUP'>> {
    return this.request({ action: 'BACKUP' }, false) as Promise<ResultOf<'BACKUP'>>;
  }

  /** Every action the server knows, with its summary. */
  help(): Promise<ResultOf<'HELP'>> {
    return this.request({ action: 'HELP' }, false) as Promise<ResultOf<'HELP'>>;
  }

  private async *scan<F extends 'keys' | 'namespaces'>(
    field: F,
    namespace: string | undefined,
    limit: number | undefined,
  ): AsyncIterableIterator<string> {
    const action = field === 'keys' ? 'KEYS' : 'NAMESPACES';
    let after: string | undefined;
    do {
      const req: RawRequest = { action };
      if (namespace !== undefined) req.namespace = namespace;
      if (after !== undefined) req.after = after;
      if (limit !== undefined) req.limit = limit;
      const page = (await this.request(req, false)) as Page<F>;
      yield* page[field];
      after = page.next ?? undefined;
    } while (after !== undefined);
  }
}

/** `(...patterns)` or `(patterns, options)`; a call with no pattern is a bug, not a request. */
function subscriptionArgs(
  method: string,
  args: readonly unknown[],
): [patterns: readonly string[], options: SubscriptionOptions | undefined] {
  const [first, second] = args;
  const explicit = Array.isArray(first);
  const patterns = (explicit ? first : args) as readonly unknown[];
  if (!explicit && args.length === 2 && typeof second === 'object' && second !== null) {
    throw new TypeError(`${method}(): pass options after an array of patterns: ${method}(['a^>'], options)`);
  }
  if (explicit && args.length > 2) throw new TypeError(`${method}(): expected (patterns[], options?)`);
  if (patterns.length === 0) throw new TypeError(`${method}(): give at least one pattern`);
  for (const [i, p] of patterns.entries()) {
    if (typeof p !== 'string')
      throw new TypeError(`${method}(): pattern ${i} must be a string (got ${typeof p})`);
  }
  return [patterns as readonly string[], explicit ? (second as SubscriptionOptions | undefined) : undefined];
}

function keyRequest(action: string, key: string, options: KeyOptions | undefined): RawRequest {
  return options?.namespace === undefined ? { action, key } : { action, namespace: options.namespace, key };
}

function isIterable(value: Entries): value is Iterable<readonly [string, unknown]> {
  return typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}

/**
 * Connect to a caretkv server and resolve once ready:
 * `const db = await connect('caretkv://127.0.0.1:7171', { requestTimeout: 5000 })`.
 * With `lazyConnect` it resolves at once and connects on the first request.
 */
export async function connect(
  urlOrOptions?: string | ClientOptions,
  options?: ClientOptions,
): Promise<CaretClient> {
  const client = new CaretClient(urlOrOptions, options);
  if (!client.options.lazyConnect) await client.connect();
  return client;
}

/** Create a client without waiting for it to connect (it connects at once unless `lazyConnect`). */
export function createClient(urlOrOptions?: string | ClientOptions, options?: ClientOptions): CaretClient {
  return new CaretClient(urlOrOptions, options);
}
