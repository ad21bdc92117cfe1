/**
 * PUBLISH and SUBSCRIBE across caretkv nodes over the Redis deployment of the Redis Cluster engine
 * (issue 16). Each node subscribes on Redis to what its own subscribers hold, and sends every
 * publish it accepts to Redis; the broker delivers to its own subscribers at once, and the other
 * nodes' relays hand the message to their brokers, which filter it again with caretkv's exact rules.
 *
 * - One Redis subscription per distinct translation (redis-glob.ts: a plain SUBSCRIBE for a
 *   pattern without wildcards, else a PSUBSCRIBE glob), counted: `news^*` held by a thousand
 *   connections on a node is one Redis pattern, gone when the last of them unsubscribes.
 * - Order: a node sends a channel's messages through the master of the channel's first segment's
 *   slot (a one-line script keyed in that slot; a plain PUBLISH would go to any node), over one
 *   connection, so one publisher's messages on one channel arrive in publish order everywhere.
 * - Exactly once per node: a message that matches two of a node's Redis subscriptions arrives
 *   twice, back to back (Redis writes one publish's deliveries together); each carries its
 *   sender's id and sequence number, and a repeat of the previous one is dropped. A node ignores
 *   its own messages (its subscribers had them already).
 * - `from` travels with the message; `$` channels never leave their node, and a message on one
 *   that arrives (from anything else writing to Redis) is not delivered.
 * - Losses: the subscribed connection is the store's (store/redis/feed.ts); the composition root
 *   tells the broker when it drops, and the broker sends subscribers a `gap`.
 *
 * Wire format on Redis: channel `<prefix>m:<channel>` (unit-encoded), message
 * `<node id>\n<seq>\n<from as JSON>\n<message JSON>`.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { LogLimiter } from '../log.js';
import type { RedisFeed } from '../store/redis/feed.js';
import { decodeUnits, type KeyLayout } from '../store/redis/keys.js';
import type { JsonText } from '../store/store.js';
import type { Pattern } from './pattern.js';
import { redisChannel, redisSubscription } from './redis-glob.js';
import type { Relay, RelaySink } from './types.js';

/** What the relay shares with the Redis engine (RedisStore.backend). */
export interface RedisBackend {
  readonly client: Redis | Cluster;
  readonly layout: KeyLayout;
  readonly feed: RedisFeed;
}

/** Publishes in the slot of KEYS[1] (the channel's first segment), so one master orders them. */
const PUBLISH_LUA = "return redis.call('PUBLISH', ARGV[1], ARGV[2])";
const PUBLISH_SHA = createHash('sha1').update(PUBLISH_LUA).digest('hex');
const NEWLINE = 0x0a;

interface Held {
  readonly name: Buffer;
  readonly glob: boolean;
  refs: number;
  /** Until Redis confirms the subscription. */
  pending: Promise<void> | undefined;
}

export class RedisRelay implements Relay {
  readonly #client: Redis | Cluster;
  readonly #layout: KeyLayout;
  readonly #feed: RedisFeed;
  /** Every channel of this deployment's messages starts with it. */
  readonly #prefix: string;
  readonly #prefixBytes: Buffer;
  readonly #node = randomUUID();
  readonly #held = new Map<string, Held>();
  readonly #failures: LogLimiter | undefined;
  #sink: RelaySink | undefined;
  #seq = 0;
  /** `<node>\n<seq>` of the last message handed on: its repeat (a second matching glob) is not. */
  #last: Buffer | undefined;

  constructor(backend: RedisBackend, logger?: Logger) {
    this.#client = backend.client;
    this.#layout = backend.layout;
    this.#feed = backend.feed;
    this.#prefix = `${backend.layout.prefix}m:`;
    this.#prefixBytes = redisChannel(this.#prefix, '');
    this.#failures = logger === undefined ? undefined : new LogLimiter(logger);
    this.#feed.onMessage((channel, message) => this.#heard(channel, message));
  }

  attach(sink: RelaySink): void {
    this.#sink = sink;
  }

  get connected(): boolean {
    return this.#feed.live && this.#client.status === 'ready';
  }

  publish(channel: string, json: JsonText, fromJson: string): void {
    const message = Buffer.from(`${this.#node}\n${++this.#seq}\n${fromJson}\n${json}`);
    const args = [this.#layout.headOf(channel), redisChannel(this.#prefix, channel), message];
    this.#client.callBuffer('EVALSHA', [PUBLISH_SHA, 1, ...args]).catch((err: unknown) => {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
        this.#client.callBuffer('EVAL', [PUBLISH_LUA, 1, ...args]).catch((e: unknown) => this.#fail(e));
      } else {
        this.#fail(err);
      }
    });
  }

  watch(pattern: Pattern): Promise<void> | undefined {
    const { glob, name } = redisSubscription(this.#prefix, pattern);
    const id = (glob ? 'p' : 's') + name.toString('latin1');
    const held = this.#held.get(id);
    if (held !== undefined) {
      held.refs++;
      return held.pending;
    }
    const entry: Held = { name, glob, refs: 1, pending: this.#feed.subscribe(name, glob) };
    entry.pending?.then(() => {
      entry.pending = undefined;
    });
    this.#held.set(id, entry);
    return entry.pending;
  }

  unwatch(pattern: Pattern): void {
    const { glob, name } = redisSubscription(this.#prefix, pattern);
    const id = (glob ? 'p' : 's') + name.toString('latin1');
    const held = this.#held.get(id);
    if (held === undefined || --held.refs > 0) return;
    this.#held.delete(id);
    this.#feed.unsubscribe(name, glob);
  }

  /** The feed and client belong to the store, which closes them. */
  async close(): Promise<void> {
    this.#sink = undefined;
  }

  #fail(err: unknown): void {
    this.#failures?.log(
      'warn',
      { err },
      'a publish did not reach the other nodes (the Redis backend failed)',
    );
  }

  #heard(channel: Buffer, message: Buffer): void {
    const prefix = this.#prefixBytes;
    if (
      channel.length <= prefix.length ||
      channel.compare(prefix, 0, prefix.length, 0, prefix.length) !== 0
    ) {
      return;
    }
    const a = message.indexOf(NEWLINE);
    const b = a === -1 ? -1 : message.indexOf(NEWLINE, a + 1);
    const c = b === -1 ? -1 : message.indexOf(NEWLINE, b + 1);
    if (c === -1) return;
    if (message.toString('latin1', 0, a) === this.#node) return;
    const id = message.subarray(0, b);
    if (this.#last?.equals(id)) return;
    this.#last = Buffer.from(id);
    this.#sink?.deliverRelayed(
      decodeUnits(channel.subarray(prefix.length)),
      message.toString('utf8', c + 1),
      message.toString('utf8', b + 1, c),
    );
  }
}
