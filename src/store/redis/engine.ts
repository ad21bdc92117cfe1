/**
 * The Redis Cluster engine (issue 16; `--store redis-cluster://...` or `redis://...`, created by
 * factory.ts): keys, values, TTLs and listings over a Redis Cluster (or a single Redis) through
 * ioredis, with the layout of keys.ts and the scripts of scripts.ts. It passes the Store contract
 * suite (test/redis-contract.test.ts: real clock, MSET within one top-level namespace). Expiry is
 * Redis's own: expiries.ts hears each expired key from the node that held it and runs its
 * namespace's purge, which takes it out of the indexes and tells every node; a read that misses a
 * key, a listing and a count purge first too (the backstop when an event is missed). COUNT of the
 * root and stats() still purge every top-level namespace first, one script each. A backend that is
 * down or too slow answers UNAVAILABLE when the client has no offline queue and a command timeout
 * (factory.ts makes it so).
 *
 * The root namespace spans every slot, so its listings and key total live in keys of their own
 * (keys.ts: rootKeys, rootChildren, rootCount) and are updated after the script of a top-level
 * namespace T reports what changed there. A removal re-checks T afterwards and restores the entry
 * if T gained it back meanwhile (a write from another node racing the removal), so concurrent
 * writers never leave a live name out of a root listing; a node that dies between the two steps
 * can (the total then drifts too): the listing drops names whose key or namespace is gone.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import {
  type ChangeListener,
  type ChangeOp,
  incrOverflow,
  incrWrongType,
  type JsonText,
  type Page,
  type SetOptions,
  type Store,
  StoreError,
  type StoreStats,
} from '../store.js';
import { ExpiryWatch } from './expiries.js';
import { RedisFeed } from './feed.js';
import { decodeUnits, encodeUnits, KeyLayout, topOf } from './keys.js';
import {
  CAS,
  COUNT,
  DEL,
  DROP,
  EXPIRE,
  FIGURES,
  INCR,
  INCR_OK,
  INCR_WRONG_TYPE,
  KEY_CREATED,
  KEY_DELETED,
  MSET,
  PAGE,
  PERSIST,
  PURGE,
  ROOT_KEY_ADDED,
  ROOT_KEY_REMOVED,
  ROOT_NS_ADDED,
  ROOT_NS_REMOVED,
  type Script,
  SET,
} from './scripts.js';

export interface RedisStoreOptions {
  /** A connected client: `new Cluster([...])` for a cluster, `new Redis(...)` for one server. */
  readonly client: Redis | Cluster;
  /** Prefix of every Redis key this deployment writes (default `ck:`). */
  readonly prefix?: string;
  /**
   * Given, each write then waits until `replicas` replicas of its master have it (Redis `WAIT`,
   * at most `timeoutMs`), and answers UNAVAILABLE if fewer do (see `runAndWait`). Without it a
   * write is acknowledged once its master has it: replication is asynchronous, and a failover
   * may lose it. The client's command timeout must leave room for `timeoutMs` (factory.ts does).
   */
  readonly wait?: { readonly replicas: number; readonly timeoutMs: number };
}

type Reply = (Buffer | number)[];

/** Redis answers that mean "not now" rather than "wrong": the cluster is failing over or loading. */
const TRANSIENT = /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|BUSY)\b/;

/**
 * A failure of the backend as the Store contract reports it: UNAVAILABLE for a connection that is
 * gone or not ready, a timeout, or a transient cluster state; anything else (a script's error: a
 * bug) passes through and becomes INTERNAL upstream.
 */
function backendError(err: unknown): unknown {
  if (err instanceof StoreError || !(err instanceof Error)) return err;
  const replied = err.name === 'ReplyError';
  if (replied && !TRANSIENT.test(err.message)) return err;
  return new StoreError('UNAVAILABLE', `the Redis backend is unavailable: ${err.message}`);
}

async function backend<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (err) {
    throw backendError(err);
  }
}

/**
 * The scripts that make a change a client is told about: with `wait`, these wait for replicas.
 * PURGE (and the purge PAGE, COUNT and FIGURES start with) only tidies indexes after Redis's own
 * expiry, and one lost in a failover is done again by the next, so a read never waits.
 */
const WAITED: ReadonlySet<Script> = new Set([SET, DEL, INCR, CAS, MSET, EXPIRE, PERSIST, DROP]);

/**
 * Replies of writes that ran on their master but were not acknowledged by enough replicas. The
 * caller still passes the reply to settle(), which keeps the root's listings in step with what
 * the master has, then throws this.
 */
const unacknowledged = new WeakMap<Reply, StoreError>();

/** The ops a change event may carry (ChangeOp). */
const OPS = new Set(['set', 'del', 'expire', 'drop', 'incr', 'cas']);

export class RedisStore implements Store {
  private readonly client: Redis | Cluster;
  private readonly wait: RedisStoreOptions['wait'];
  /** The node's subscribed connection: change events (and the pub/sub relay's channels). */
  private readonly feed: RedisFeed;
  /** Redis's expiries as they happen, from every node. */
  private readonly expiries: ExpiryWatch;
  /** The prefix's length as bytes (Redis keys start with it). */
  private readonly prefixBytes: number;
  /** Top-level namespaces whose purge runs now: true when another is wanted after it. */
  private readonly purging = new Map<string, boolean>();
  private readonly layout: KeyLayout;
  /** This node's id in change events: a node hears its own changes at once, others' through Redis. */
  private readonly node = randomUUID();
  private listener: ChangeListener | null = null;
  /** Resolves once this node hears other nodes' changes. */
  readonly subscribed: Promise<void>;

  constructor(options: RedisStoreOptions) {
    this.client = options.client;
    this.wait = options.wait;
    this.layout = new KeyLayout(options.prefix);
    this.feed = new RedisFeed(options.client);
    const events = this.layout.events;
    this.feed.subscribe(events, false);
    this.feed.onMessage((channel, message) => {
      if (channel.equals(events)) this.heard(message);
    });
    this.subscribed = this.feed.ready;
    this.prefixBytes = encodeUnits(this.layout.prefix).length;
    this.expiries = new ExpiryWatch(options.client, encodeUnits(`${this.layout.prefix}{`), (key) =>
      this.expiredKey(key),
    );
  }

  /**
   * Redis expired `<prefix>{T}:v:<key>` (or another key of T's: ignored): T's purge takes it out
   * of the indexes and tells every node. Purges of one T run one at a time; events that arrive
   * meanwhile ask for one more after it (a purge takes every due key, up to its batch).
   */
  private expiredKey(redisKey: Buffer): void {
    const close = redisKey.indexOf(0x7d, this.prefixBytes);
    if (close === -1 || redisKey.toString('latin1', close + 1, close + 4) !== ':v:') return;
    const top = topOf(decodeUnits(redisKey.subarray(close + 4)));
    if (this.purging.has(top)) {
      this.purging.set(top, true);
      return;
    }
    this.purging.set(top, false);
    const next = (): void => {
      // A failure leaves the keys to the next read, listing or count of T (they purge first).
      this.purge(top)
        .catch(() => {})
        .finally(() => {
          if (this.purging.get(top) === true) {
            this.purging.set(top, false);
            next();
          } else {
            this.purging.delete(top);
          }
        });
    };
    next();
  }

  /**
   * What the pub/sub relay shares with the engine (pubsub/redis-relay.ts): the client, the key
   * layout (its prefix, and the slot a channel's messages go through) and the subscribed feed.
   */
  get backend(): { readonly client: Redis | Cluster; readonly layout: KeyLayout; readonly feed: RedisFeed } {
    return { client: this.client, layout: this.layout, feed: this.feed };
  }

  /** Told when other nodes' changes may have been missed (the subscribed connection was lost). */
  onEventsLost(listener: () => void): void {
    this.feed.onLost(listener);
  }

  /** A change event from a script (see scripts.ts): emitted unless this node made the change. */
  private heard(message: Buffer): void {
    const a = message.indexOf(0x0a);
    const b = message.indexOf(0x0a, a + 1);
    const c = message.indexOf(0x0a, b + 1);
    if (a === -1 || b === -1 || c === -1) return;
    if (message.toString('latin1', a + 1, b) === this.node) return;
    const op = message.toString('latin1', 0, a);
    if (!OPS.has(op)) return;
    const value = c + 1 < message.length ? message.toString('utf8', c + 1) : undefined;
    this.listener?.(op as ChangeOp, decodeUnits(message.subarray(b + 1, c)), value);
  }

  onChange(listener: ChangeListener | null): void {
    this.listener = listener;
  }

  private emit(op: ChangeOp, key: string, value: JsonText | undefined): void {
    this.listener?.(op, key, value);
  }

  private async run(script: Script, keys: Buffer[], scriptArgs: (Buffer | string)[]): Promise<Reply> {
    const args = [...scriptArgs, this.layout.events, this.node];
    if (this.wait !== undefined && WAITED.has(script)) return this.runAndWait(script, keys, args, this.wait);
    try {
      return (await this.client.callBuffer('EVALSHA', [script.sha, keys.length, ...keys, ...args])) as Reply;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw backendError(err);
      return (await backend(
        this.client.callBuffer('EVAL', [script.lua, keys.length, ...keys, ...args]),
      )) as Reply;
    }
  }

  /**
   * A write script, then `WAIT replicas timeoutMs` on the same connection: its slot's master's.
   * Both go in one pipeline keyed by the script's key, the script inside MULTI/EXEC: ioredis resends
   * a redirected command of a plain pipeline on its own, and the WAIT left behind would count the
   * acknowledgements of some earlier write. WAIT stays outside the transaction (inside one it does
   * not block). A script refused before it ran (MOVED: the client's slot map is stale) is sent
   * again once the map is refreshed. Too few acknowledgements mark the reply (see `unacknowledged`).
   */
  private async runAndWait(
    script: Script,
    keys: Buffer[],
    args: (Buffer | string)[],
    wait: { readonly replicas: number; readonly timeoutMs: number },
  ): Promise<Reply> {
    let command: [string, string] = ['EVALSHA', script.sha];
    for (let attempt = 1; ; attempt++) {
      // The pipeline's own exec() queues EXEC while a MULTI is open (buffer replies), then sends.
      const pipeline = this.client.pipeline() as unknown as {
        multi(): unknown;
        callBuffer(name: string, args: (Buffer | string | number)[]): unknown;
        call(name: string, args: string[]): unknown;
        exec(): Promise<[Error | null, unknown][]>;
      };
      pipeline.multi();
      pipeline.callBuffer(command[0], [command[1], keys.length, ...keys, ...args]);
      void pipeline.exec();
      pipeline.call('WAIT', [String(wait.replicas), String(wait.timeoutMs)]);
      const [, queued, ran, waited] = await backend(pipeline.exec());
      if (ran === undefined || waited === undefined) throw new Error('a MULTI pipeline lost replies');
      if (ran[0] !== null) {
        // EXECABORT: refused before anything ran, for the reason the script's queuing gave.
        const why = queued?.[0] ?? ran[0];
        if (why.message.startsWith('MOVED') && attempt < 3 && 'refreshSlotsCache' in this.client) {
          const cluster = this.client;
          await new Promise<void>((resolve) => cluster.refreshSlotsCache(() => resolve()));
          continue;
        }
        if (/^(MOVED|ASK)\b/.test(why.message))
          throw new StoreError(
            'UNAVAILABLE',
            `the Redis backend is unavailable: ${why.message} (nothing was written)`,
          );
        throw backendError(why);
      }
      const reply = (ran[1] as unknown[])[0];
      if (reply instanceof Error) {
        if (reply.message.startsWith('NOSCRIPT') && command[0] === 'EVALSHA') {
          command = ['EVAL', script.lua];
          continue;
        }
        throw backendError(reply);
      }
      const [failed, acks] = waited;
      if (failed !== null || (acks as number) < wait.replicas) {
        const heard = failed !== null ? `could not be asked (${failed.message})` : `acknowledged it: ${acks}`;
        unacknowledged.set(
          reply as Reply,
          new StoreError(
            'UNAVAILABLE',
            `the write was applied on its Redis master, but not acknowledged by ${wait.replicas} replica(s) within ${wait.timeoutMs} ms (its replicas ${heard}), so a failover may lose it`,
          ),
        );
      }
      return reply as Reply;
    }
  }

  /**
   * What a script of T's reported: the root's listings and total brought up to date, then the
   * keys it found expired told to the listener. `gone` starts at reply[from].
   */
  private async settle(
    path: string,
    flags: number,
    reply: Reply,
    from: number,
    count = reply.length,
    deleted = flags & KEY_DELETED ? 1 : 0,
  ): Promise<void> {
    const top = topOf(path);
    const gone: string[] = [];
    for (let i = from; i < count; i++) gone.push(decodeUnits(reply[i] as Buffer));
    const delta = (flags & KEY_CREATED ? 1 : 0) - deleted - gone.length;
    const { client, layout } = this;
    const work: Promise<unknown>[] = [];
    if (delta !== 0) work.push(client.incrby(layout.rootCount, delta));
    if (gone.length > 0) work.push(client.incrby(layout.rootExpired, gone.length));
    const name = encodeUnits(top);
    if (flags & ROOT_KEY_ADDED) work.push(client.zadd(layout.rootKeys, 0, name));
    if (flags & ROOT_NS_ADDED) work.push(client.zadd(layout.rootChildren, 0, name));
    if (flags & ROOT_KEY_REMOVED) work.push(this.unlistRootKey(top));
    if (flags & ROOT_NS_REMOVED) work.push(this.unlistRootNamespace(top));
    await backend(Promise.all(work));
    for (const key of gone) this.emit('expire', key, undefined);
    const failure = unacknowledged.get(reply);
    if (failure !== undefined) throw failure;
  }

  /** Takes a top-level key out of the root's listing, then puts it back if it exists again meanwhile. */
  private async unlistRootKey(top: string): Promise<void> {
    const name = encodeUnits(top);
    await this.client.zrem(this.layout.rootKeys, name);
    if ((await this.client.exists(this.layout.value(top))) === 1)
      await this.client.zadd(this.layout.rootKeys, 0, name);
  }

  /** The same for a top-level namespace: back if it has keys again. */
  private async unlistRootNamespace(top: string): Promise<void> {
    const name = encodeUnits(top);
    await this.client.zrem(this.layout.rootChildren, name);
    if (Number((await this.client.hget(this.layout.counters(top), name)) ?? 0) > 0) {
      await this.client.zadd(this.layout.rootChildren, 0, name);
    }
  }

  /**
   * Runs the purge of the top-level namespace `path` belongs to. Redis's expiry events run it
   * (expiredKey); a read that finds no key runs it too, as the backstop for a missed event (the
   * key may have just expired: its expiry is then heard once, by whichever purge finds it).
   */
  private async purge(path: string): Promise<void> {
    const reply = await this.run(PURGE, [this.layout.counters(path)], [this.layout.headOf(path)]);
    await this.settle(path, reply[0] as number, reply, 1);
  }

  async get(key: string): Promise<JsonText | undefined> {
    const value = await backend(this.client.getBuffer(this.layout.value(key)));
    if (value !== null) return value.toString('utf8');
    await this.purge(key);
    return undefined;
  }

  async exists(key: string): Promise<boolean> {
    if ((await backend(this.client.exists(this.layout.value(key)))) === 1) return true;
    await this.purge(key);
    return false;
  }

  async mget(keys: readonly string[]): Promise<(JsonText | undefined)[]> {
    // Keys of different namespaces live in different slots: one GET each (pipelined by the client).
    return Promise.all(keys.map((key) => this.get(key)));
  }

  /**
   * All entries or none, in one script: so they must share their top-level namespace (one slot);
   * otherwise nothing is written and CROSS_NAMESPACE says so. A key given twice takes its last value.
   */
  async mset(entries: readonly (readonly [string, JsonText])[]): Promise<void> {
    if (entries.length === 0) return;
    const top = topOf(entries[0]![0]);
    const others = new Set(entries.map(([key]) => topOf(key)).filter((t) => t !== top));
    if (others.size > 0) {
      throw new StoreError(
        'CROSS_NAMESPACE',
        `MSET writes keys of one top-level namespace at a time on the Redis Cluster engine; these span ${[top, ...others].map((t) => JSON.stringify(t)).join(', ')}`,
      );
    }
    const args: (Buffer | string)[] = [this.layout.headOf(top)];
    for (const [key, value] of entries) args.push(encodeUnits(key), value);
    const reply = await this.run(MSET, [this.layout.value(entries[0]![0])], args);
    const created = reply[0] as number;
    // The created keys counted as "minus deleted"; the flag would count them once more.
    await this.settle(top, (reply[1] as number) & ~KEY_CREATED, reply, 2, undefined, -created);
    for (const [key, value] of entries) this.emit('set', key, value);
  }

  async set(key: string, value: JsonText, options?: SetOptions): Promise<boolean> {
    const mode = options?.ifAbsent === true ? 'NX' : options?.ifPresent === true ? 'XX' : '';
    const ttl = options?.ttl === undefined ? '' : String(Math.ceil(options.ttl));
    const reply = await this.run(
      SET,
      [this.layout.value(key)],
      [this.layout.headOf(key), encodeUnits(key), value, mode, ttl],
    );
    await this.settle(key, reply[1] as number, reply, 2);
    if (reply[0] !== 1) return false;
    this.emit('set', key, value);
    return true;
  }

  async del(key: string): Promise<boolean> {
    const reply = await this.run(DEL, [this.layout.value(key)], [this.layout.headOf(key), encodeUnits(key)]);
    await this.settle(key, reply[1] as number, reply, 2);
    if (reply[0] !== 1) return false;
    this.emit('del', key, undefined);
    return true;
  }

  async incr(key: string, by: number): Promise<number> {
    const reply = await this.run(
      INCR,
      [this.layout.value(key)],
      [this.layout.headOf(key), encodeUnits(key), String(by)],
    );
    await this.settle(key, reply[1] as number, reply, 3);
    const text = (reply[2] as Buffer).toString('utf8');
    if (reply[0] === INCR_WRONG_TYPE) throw incrWrongType(key, JSON.parse(text));
    if (reply[0] !== INCR_OK) throw incrOverflow(key);
    this.emit('incr', key, text);
    return Number(text);
  }

  async cas(key: string, expected: JsonText, value: JsonText): Promise<boolean> {
    const reply = await this.run(
      CAS,
      [this.layout.value(key)],
      [this.layout.headOf(key), encodeUnits(key), expected, value],
    );
    await this.settle(key, reply[1] as number, reply, 2);
    if (reply[0] !== 1) return false;
    this.emit('cas', key, value);
    return true;
  }

  /**
   * Removes the namespace's subtree in steps of at most DROP_BATCH keys (one script each, so other
   * clients' commands run between them); resolves to how many keys went. Keys written into the
   * subtree while the walk runs may go too. The root ('') is not dropped here.
   */
  async drop(namespace: string): Promise<number> {
    if (namespace === '') throw new Error('the Redis Cluster engine does not drop the root namespace');
    let total = 0;
    for (;;) {
      const reply = await this.run(
        DROP,
        [this.layout.counters(namespace)],
        [this.layout.headOf(namespace), encodeUnits(namespace), String(total)],
      );
      const deleted = reply[0] as number;
      total += deleted;
      await this.settle(
        namespace,
        (reply[2] as number) | (deleted > 0 ? KEY_DELETED : 0),
        reply,
        3,
        undefined,
        deleted,
      );
      if (reply[1] === 1) break;
    }
    if (total > 0) this.emit('drop', namespace, undefined);
    return total;
  }

  /** Keys, namespaces and TTLs over every top-level namespace (one script each): for INFO. */
  /** Every top-level namespace (with keys below it, or a key of its name). */
  private async tops(): Promise<string[]> {
    const { client, layout } = this;
    const [tops, topKeys] = await backend(
      Promise.all([
        client.zrangeBuffer(layout.rootChildren, 0, -1),
        client.zrangeBuffer(layout.rootKeys, 0, -1),
      ]),
    );
    return [...new Set([...tops, ...topKeys].map((b) => decodeUnits(b)))];
  }

  /** Runs every top-level namespace's purge (COUNT of the root, stats). */
  private async purgeAll(): Promise<void> {
    await Promise.all((await this.tops()).map((top) => this.purge(top)));
  }

  /** Keys, namespaces and TTLs over every top-level namespace (one script each): for INFO. */
  async stats(): Promise<StoreStats> {
    const { client, layout } = this;
    let namespaces = 0;
    let keysWithTtl = 0;
    // Each namespace's purge first, so the totals read after it count no expired key.
    await Promise.all(
      (await this.tops()).map(async (top) => {
        const reply = await this.run(FIGURES, [layout.counters(top)], [layout.headOf(top)]);
        namespaces += reply[0] as number;
        keysWithTtl += reply[1] as number;
        await this.settle(top, reply[2] as number, reply, 3);
      }),
    );
    const [keys, expired] = await backend(
      Promise.all([client.get(layout.rootCount), client.get(layout.rootExpired)]),
    );
    return { keys: Number(keys ?? 0), namespaces, keysWithTtl, expired: Number(expired ?? 0) };
  }

  async expire(key: string, ttl: number): Promise<boolean> {
    const reply = await this.run(
      EXPIRE,
      [this.layout.value(key)],
      [this.layout.headOf(key), encodeUnits(key), String(Math.ceil(ttl))],
    );
    await this.settle(key, reply[1] as number, reply, 2);
    return reply[0] === 1;
  }

  async persist(key: string): Promise<boolean> {
    const reply = await this.run(
      PERSIST,
      [this.layout.value(key)],
      [this.layout.headOf(key), encodeUnits(key)],
    );
    await this.settle(key, reply[1] as number, reply, 2);
    return reply[0] === 1;
  }

  async ttl(key: string): Promise<number | null | undefined> {
    const ms = await backend(this.client.pttl(this.layout.value(key)));
    if (ms !== -2) return ms === -1 ? null : ms;
    await this.purge(key);
    return undefined;
  }

  keys(namespace: string, after: string | undefined, limit: number): Promise<Page> {
    return namespace === ''
      ? this.rootPage(this.layout.rootKeys, after, limit, true)
      : this.page(this.layout.keyIndex(namespace), namespace, after, limit);
  }

  namespaces(namespace: string, after: string | undefined, limit: number): Promise<Page> {
    return namespace === ''
      ? this.rootPage(this.layout.rootChildren, after, limit, false)
      : this.page(this.layout.childIndex(namespace), namespace, after, limit);
  }

  async count(namespace: string): Promise<number> {
    if (namespace === '') {
      // Keys that expired in namespaces nothing has touched since still count in the root total:
      // purge every top-level namespace first (one script each, like stats()).
      await this.purgeAll();
      return Number((await backend(this.client.get(this.layout.rootCount))) ?? 0);
    }
    const reply = await this.run(
      COUNT,
      [this.layout.counters(namespace)],
      [this.layout.headOf(namespace), encodeUnits(namespace)],
    );
    await this.settle(namespace, reply[1] as number, reply, 2);
    return reply[0] as number;
  }

  private async page(
    index: Buffer,
    namespace: string,
    after: string | undefined,
    limit: number,
  ): Promise<Page> {
    const reply = await this.run(
      PAGE,
      [index],
      [this.layout.headOf(namespace), lexAfter(after), String(limit + 1)],
    );
    const purged = reply[1] as number;
    await this.settle(namespace, reply[0] as number, reply, 2, 2 + purged);
    const names = reply.slice(2 + purged).map((b) => decodeUnits(b as Buffer));
    return pageOf(names, limit);
  }

  /**
   * A page of the root's listings, which live outside every namespace's slot: each name is checked
   * in its own namespace (after that namespace's purge, which also unlists an expired top-level
   * key), and a name whose key or namespace is gone (a node died between a script and the root
   * update) is unlisted as it is met.
   */
  private async rootPage(
    index: Buffer,
    after: string | undefined,
    limit: number,
    keys: boolean,
  ): Promise<Page> {
    const names: string[] = [];
    let cursor = after;
    for (;;) {
      const want = limit + 1 - names.length;
      const batch = (
        await backend(this.client.zrangebylexBuffer(index, lexAfter(cursor), '+', 'LIMIT', 0, want))
      ).map((b) => decodeUnits(b));
      const alive = await Promise.all(
        batch.map(async (name) => {
          // Each check runs the namespace's purge first (which also unlists an expired top-level key).
          let live: boolean;
          if (keys) {
            await this.purge(name);
            live = (await backend(this.client.exists(this.layout.value(name)))) === 1;
          } else {
            live = (await this.count(name)) > 0;
          }
          if (!live) await (keys ? this.unlistRootKey(name) : this.unlistRootNamespace(name));
          return live;
        }),
      );
      for (let i = 0; i < batch.length; i++) if (alive[i]) names.push(batch[i]!);
      if (batch.length < want || names.length > limit) break;
      cursor = batch[batch.length - 1];
    }
    return pageOf(names, limit);
  }

  /** Quits both connections (or drops them, when they are not connected: QUIT would not be sent). */
  async close(): Promise<void> {
    const quit = async (): Promise<void> => {
      try {
        await this.client.quit();
      } catch {
        this.client.disconnect();
      }
    };
    await Promise.all([quit(), this.feed.close(), this.expiries.close()]);
  }
}

/** The start of a ZRANGEBYLEX page: the beginning, or just after `after` (exclusive). */
function lexAfter(after: string | undefined): Buffer {
  return after === undefined ? Buffer.from('-') : Buffer.concat([Buffer.from('('), encodeUnits(after)]);
}

/** A page from up to limit + 1 names: the extra one only says there is more. */
function pageOf(names: string[], limit: number): Page {
  if (names.length <= limit) return { names, next: null };
  const page = names.slice(0, limit);
  return { names: page, next: page[page.length - 1]! };
}
