/**
 * The broker: channel subscriptions, key observations, publishing and change fan-out.
 * It knows nothing of the wire: commands (src/commands/pubsub.ts) call it with a connection's
 * `RemoteSubscriber`, the embedding program reaches it through `broker.pubsub` (local.ts), and
 * the store feeds it through `onStoreChange`.
 *
 * Delivery is synchronous and in publish order: a publish returns after every matching
 * subscriber's push was written to its connection (or dropped by its bound), so messages from one
 * publisher on one channel arrive in publish order, at most once. A subscriber with several
 * matching patterns receives one push per pattern (each names its pattern, as Redis does); a
 * change reaches each observer once, whatever number of its patterns match.
 *
 * Safe iteration: the matches are collected first, then delivered; a subscription removed
 * meanwhile (a handler unsubscribing itself or another, a slow subscriber disconnected) is
 * marked inactive and skipped. A handler may publish (or write to the store) re-entrantly.
 *
 * DROP: the store reports one `drop` with the namespace path rather than one change per key.
 * Observers whose pattern could match any key below that namespace (`users^>`, `users^*`,
 * `users^42`, `*^42`, `>` for a DROP of `users`) receive one change with `op: "drop"` and
 * `key` set to the namespace, and no value; observers of the namespace's own path or of other
 * subtrees receive nothing.
 */
import { type Logger, pino } from 'pino';
import { LogLimiter } from '../log.js';
import type { ChangeListener, ChangeOp, JsonText } from '../store/store.js';
import type { Connection } from '../transport/types.js';
import {
  type BrokerLimits,
  type Publisher,
  PubSubRefusal,
  REFUSAL_CODES,
  type RefusalCode,
  resolveLimits,
  TokenBucket,
} from './limits.js';
import { PubSub } from './local.js';
import {
  channelRules,
  isReserved,
  isSystemChannel,
  KEY_PATTERN_RULES,
  type PathRules,
  type Pattern,
  PatternError,
  parseChannel,
  parsePattern,
  RESERVED_PREFIX,
  SYSTEM_SEGMENT,
} from './pattern.js';
import { type OutputCounters, type PushSink, RemoteSubscriber } from './remote.js';
import {
  Change,
  DELIVERED,
  GONE,
  Message,
  type PushEncoder,
  type Subscriber,
  Subscription,
} from './subscriber.js';
import { SubscriptionIndex } from './trie.js';
import type { BrokerCore, Relay, RelaySink } from './types.js';

export interface BrokerOptions {
  /** How pushes are written: protocol/pushes.ts's NDJSON_PUSHES for the JSON protocol. */
  pushes: PushEncoder;
  limits?: Partial<BrokerLimits>;
  /** For in-process handler faults and system events; silent by default. */
  logger?: Logger;
  /** Clock for rate limits, in milliseconds. */
  now?: () => number;
  /** Carries publishes to and from the deployment's other nodes (cluster mode); none alone. */
  relay?: Relay;
}

export interface BrokerStats {
  /** Connections and in-process handlers holding at least one subscription or observation. */
  subscribers: number;
  /** Channel subscriptions (a subscriber's distinct patterns). */
  subscriptions: number;
  /** Key observations. */
  observations: number;
  /** Publishes accepted (system ones included). */
  publishes: number;
  /** Publishes from other nodes delivered here (cluster mode). */
  relayed: number;
  /** Message pushes written (one per matching subscription). */
  messagesDelivered: number;
  /** Change pushes written (one per observer per change). */
  changesDelivered: number;
  /** Pushes dropped by the `drop` policy. */
  dropped: number;
  /** Subscribers closed by the `disconnect` policy. */
  slowDisconnected: number;
  /** Refused requests by code. */
  refused: Record<RefusalCode, number>;
}

/** `from` of messages the server itself (or the embedding program) publishes. */
export const SERVER_FROM = '$server';

function serverPublisher(pushes: PushEncoder): Publisher {
  return {
    from: SERVER_FROM,
    fromJson: pushes.quoted(SERVER_FROM),
    rate: undefined,
    guard: undefined,
    refused() {},
  };
}

/** Which family a subscription belongs to: its map on the subscriber, its index, its rules. */
interface Family {
  readonly index: SubscriptionIndex<Subscription>;
  readonly rules: PathRules;
  readonly code: RefusalCode;
  readonly guard: 'subscribe' | 'observe';
  /** Its subscriptions are told to the relay (channels: other nodes' publishes must reach them). */
  readonly relayed: boolean;
  readonly mapOf: (s: Subscriber) => Map<string, Subscription>;
}

/** `channels[]` -> `channels[i]` (or `channels` without an index); other names stay as they are. */
function fieldName(field: string, i?: number): string {
  if (!field.endsWith('[]')) return field;
  const base = field.slice(0, -2);
  return i === undefined ? base : `${base}[${i}]`;
}

const channelsOf = (s: Subscriber): Map<string, Subscription> => s.channels;
const keysOf = (s: Subscriber): Map<string, Subscription> => s.keys;

/**
 * The broker behind a small interface: what the pub/sub commands, the protocol pipeline and the
 * composition root need from it. `Broker` (in memory, one process) is one implementation; an
 * engine that spans nodes can be another.
 */
export interface PubSubBroker extends BrokerCore {
  /** The in-process API (subscribe, observe and publish as the server). */
  readonly pubsub: PubSub;
  /** The pub/sub side of a connection, created on first use. */
  remote(conn: PushSink): RemoteSubscriber;
  connectionClosed(conn: Connection | PushSink): void;
  connectionDrained(conn: Connection | PushSink): void;
  unsubscribe(subscriber: Subscriber, patterns?: readonly string[], field?: string): number | PubSubRefusal;
  unobserve(subscriber: Subscriber, patterns?: readonly string[], field?: string): number | PubSubRefusal;
  /** Re-checks what a subscriber holds against its guard; ends what it may no longer hold. */
  recheck(subscriber: Subscriber, reason: string): number;
  publish(channel: string, json: JsonText, publisher: Publisher): number | PubSubRefusal;
  /** The store's change listener: feeds OBSERVE. */
  readonly onStoreChange: ChangeListener;
  /** The connection to a backend shared with other nodes dropped: subscribers hear of a gap. */
  backendLost(): void;
  /** Whether subscriptions just made still wait for the backend (see Broker.relaying). */
  relaying(): Promise<void> | undefined;
  stats(): BrokerStats;
}

/**
 * Whether a channel pattern can match channels other nodes publish on: all but those spelling out a
 * reserved first segment (`$sys^>`), whose channels never leave their node.
 */
function reachesOtherNodes(pattern: Pattern): boolean {
  return !pattern.segments[0]!.startsWith(RESERVED_PREFIX);
}

export class Broker implements PubSubBroker, RelaySink {
  readonly limits: BrokerLimits;
  readonly log: Logger;
  /** The in-process API (`server.pubsub`). */
  readonly pubsub: PubSub;
  readonly #channels: Family;
  readonly #keys: Family;
  readonly #remotes = new WeakMap<object, RemoteSubscriber>();
  readonly #now: () => number;
  readonly #pushes: PushEncoder;
  /** The server's own publisher identity (`$server`). */
  readonly #server: Publisher;
  readonly #output: OutputCounters = { dropped: 0, slowDisconnected: 0 };
  readonly #refused = Object.fromEntries(REFUSAL_CODES.map((c) => [c, 0])) as Record<RefusalCode, number>;
  #subscribers = 0;
  #publishes = 0;
  #messagesDelivered = 0;
  #changesDelivered = 0;
  #changeStamp = 0;
  /** Reused match buffer for the outermost delivery; re-entrant deliveries get their own. */
  #scratch: Subscription[] = [];
  #depth = 0;
  readonly #faults: LogLimiter;
  readonly #relay: Relay | undefined;
  /** Subscribers holding anything: the ones a backend loss may concern. */
  readonly #active = new Set<Subscriber>();
  #relayed = 0;
  /** Relay subscriptions the backend has not confirmed yet. */
  readonly #watching = new Set<Promise<void>>();

  constructor(options: BrokerOptions) {
    this.#pushes = options.pushes;
    this.#server = serverPublisher(options.pushes);
    this.limits = resolveLimits(options.limits);
    this.log = options.logger ?? pino({ enabled: false });
    this.#now = options.now ?? Date.now;
    this.#faults = new LogLimiter(this.log);
    this.#channels = {
      index: new SubscriptionIndex({ reserved: true }),
      rules: channelRules(this.limits.maxChannelLength),
      code: 'BAD_CHANNEL',
      guard: 'subscribe',
      relayed: options.relay !== undefined,
      mapOf: channelsOf,
    };
    this.#keys = {
      index: new SubscriptionIndex({ reserved: false, prefixQueries: true }),
      rules: KEY_PATTERN_RULES,
      code: 'BAD_KEY',
      guard: 'observe',
      relayed: false,
      mapOf: keysOf,
    };
    this.pubsub = new PubSub(this);
    this.#relay = options.relay;
    this.#relay?.attach(this);
  }

  // ---- connections ------------------------------------------------------------------------------

  /** The pub/sub side of a connection, created on first use. */
  remote(conn: PushSink): RemoteSubscriber {
    let remote = this.#remotes.get(conn);
    if (remote === undefined) {
      const rate =
        this.limits.maxPublishRate > 0 ? new TokenBucket(this.limits.maxPublishRate, this.#now) : undefined;
      remote = new RemoteSubscriber(conn, this.limits, this.#output, rate, this.#pushes);
      this.#remotes.set(conn, remote);
    }
    return remote;
  }

  /** The connection closed: all its subscriptions and observations go at once. */
  connectionClosed(conn: Connection | PushSink): void {
    const remote = this.#remotes.get(conn);
    if (remote === undefined) return;
    this.#remotes.delete(conn);
    this.release(remote);
  }

  /** The connection's output drained: a subscriber that lost pushes hears about it now. */
  connectionDrained(conn: Connection | PushSink): void {
    this.#remotes.get(conn)?.drain();
  }

  // ---- subscriptions ----------------------------------------------------------------------------

  /**
   * Adds channel patterns (all or none). Patterns already held are kept once. Returns how many
   * channel patterns the subscriber now holds. `field` names the request field in messages
   * (`channels[]` names each element: `channels[2]`).
   */
  subscribe(
    subscriber: Subscriber,
    patterns: readonly string[],
    field = 'channels[]',
  ): number | PubSubRefusal {
    return this.#add(this.#channels, subscriber, patterns, field);
  }

  /** Removes the given channel patterns (all when omitted). Returns how many remain. */
  unsubscribe(
    subscriber: Subscriber,
    patterns?: readonly string[],
    field = 'channels[]',
  ): number | PubSubRefusal {
    return this.#remove(this.#channels, subscriber, patterns, field);
  }

  /** Adds key patterns (all or none). Returns how many key patterns the subscriber now holds. */
  observe(subscriber: Subscriber, patterns: readonly string[], field = 'keys[]'): number | PubSubRefusal {
    return this.#add(this.#keys, subscriber, patterns, field);
  }

  /** Removes the given key patterns (all when omitted). Returns how many remain. */
  unobserve(subscriber: Subscriber, patterns?: readonly string[], field = 'keys[]'): number | PubSubRefusal {
    return this.#remove(this.#keys, subscriber, patterns, field);
  }

  /**
   * Its permissions changed (a config reload, AUTH as another user): ends every subscription and
   * observation its guard no longer allows, and tells it which and why (`revoked`). Returns how
   * many ended.
   */
  recheck(subscriber: Subscriber, reason: string): number {
    const guard = subscriber.guard;
    if (guard === undefined) return 0;
    const channels: string[] = [];
    const keys: string[] = [];
    for (const text of subscriber.channels.keys())
      if (guard.subscribe(text) !== undefined) channels.push(text);
    for (const text of subscriber.keys.keys()) if (guard.observe(text) !== undefined) keys.push(text);
    if (channels.length === 0 && keys.length === 0) return 0;
    if (channels.length > 0) this.#remove(this.#channels, subscriber, channels, 'channels[]');
    if (keys.length > 0) this.#remove(this.#keys, subscriber, keys, 'keys[]');
    subscriber.revoked(channels, keys, reason);
    return channels.length + keys.length;
  }

  /** Removes every subscription and observation of a subscriber. */
  release(subscriber: Subscriber): void {
    const had = subscriber.channels.size + subscriber.keys.size;
    if (had === 0) return;
    for (const sub of subscriber.channels.values()) this.#drop(this.#channels, sub);
    for (const sub of subscriber.keys.values()) this.#drop(this.#keys, sub);
    subscriber.channels.clear();
    subscriber.keys.clear();
    this.#activeChanged(subscriber, false);
  }

  #add(
    family: Family,
    subscriber: Subscriber,
    inputs: readonly string[],
    field: string,
  ): number | PubSubRefusal {
    const map = family.mapOf(subscriber);
    const parsed: Pattern[] = [];
    let fresh = 0;
    for (let i = 0; i < inputs.length; i++) {
      const pattern = parsePattern(inputs[i]!, family.rules, fieldName(field, i));
      if (pattern instanceof PatternError) return this.#refuse(subscriber, family.code, pattern.message);
      if (!map.has(pattern.text) && !parsed.some((p) => p.text === pattern.text)) {
        const denied = subscriber.guard?.[family.guard](pattern.text);
        if (denied !== undefined) return this.#refuse(subscriber, 'NOPERM', denied);
        fresh++;
      }
      parsed.push(pattern);
    }
    const before = subscriber.channels.size + subscriber.keys.size;
    if (subscriber.limited && before + fresh > this.limits.maxSubscriptions) {
      return this.#refuse(
        subscriber,
        'TOO_MANY_SUBSCRIPTIONS',
        `${fieldName(field)}: this connection would hold ${before + fresh} subscriptions and observations, over the limit of ${this.limits.maxSubscriptions} (unsubscribe some, use a wildcard pattern, or raise --max-subscriptions)`,
      );
    }
    for (const pattern of parsed) {
      if (map.has(pattern.text)) continue;
      const sub = new Subscription(subscriber, pattern, this.#pushes.quoted(pattern.text));
      map.set(pattern.text, sub);
      family.index.add(pattern, sub);
      if (family.relayed && reachesOtherNodes(pattern)) {
        const pending = this.#relay!.watch(pattern);
        if (pending !== undefined && !this.#watching.has(pending)) {
          this.#watching.add(pending);
          pending.then(() => this.#watching.delete(pending));
        }
      }
    }
    if (before === 0 && fresh > 0) this.#activeChanged(subscriber, true);
    return map.size;
  }

  #remove(
    family: Family,
    subscriber: Subscriber,
    inputs: readonly string[] | undefined,
    field: string,
  ): number | PubSubRefusal {
    const map = family.mapOf(subscriber);
    const before = subscriber.channels.size + subscriber.keys.size;
    if (inputs === undefined) {
      for (const sub of map.values()) this.#drop(family, sub);
      map.clear();
    } else {
      // Validate all first: a malformed pattern could never have been subscribed, so it is a typo
      // the client should hear about, and nothing is removed.
      const texts: string[] = [];
      for (let i = 0; i < inputs.length; i++) {
        const pattern = parsePattern(inputs[i]!, family.rules, fieldName(field, i));
        if (pattern instanceof PatternError) return this.#refuse(subscriber, family.code, pattern.message);
        texts.push(pattern.text);
      }
      for (const text of texts) {
        const sub = map.get(text);
        if (sub === undefined) continue;
        this.#drop(family, sub);
        map.delete(text);
      }
    }
    if (before > 0 && subscriber.channels.size + subscriber.keys.size === 0) {
      this.#activeChanged(subscriber, false);
    }
    return map.size;
  }

  #drop(family: Family, sub: Subscription): void {
    sub.active = false;
    family.index.remove(sub.pattern, sub);
    if (family.relayed && reachesOtherNodes(sub.pattern)) this.#relay!.unwatch(sub.pattern);
  }

  #activeChanged(subscriber: Subscriber, active: boolean): void {
    this.#subscribers += active ? 1 : -1;
    if (active) this.#active.add(subscriber);
    else this.#active.delete(subscriber);
    subscriber.activeChanged(active);
  }

  // ---- publishing -------------------------------------------------------------------------------

  /**
   * Publishes JSON text on a channel. Returns how many pushes were delivered (dropped ones do
   * not count), or why the publish was refused: RATE_LIMITED, BAD_CHANNEL, NOPERM (a `$` channel),
   * MESSAGE_TOO_LARGE.
   */
  publish(channel: string, json: JsonText, publisher: Publisher): number | PubSubRefusal {
    if (publisher.rate !== undefined && !publisher.rate.take()) {
      return this.#refuse(
        publisher,
        'RATE_LIMITED',
        `over ${this.limits.maxPublishRate} publishes per second on this connection; slow down or raise --max-publish-rate (the connection stays open)`,
      );
    }
    const canonical = parseChannel(channel, this.#channels.rules);
    if (typeof canonical !== 'string') return this.#refuse(publisher, 'BAD_CHANNEL', canonical.message);
    if (isReserved(canonical)) {
      return this.#refuse(
        publisher,
        'NOPERM',
        `channel: ${JSON.stringify(canonical)} is reserved for the server (channels whose first segment starts with "$" take no client publishes)`,
      );
    }
    const denied = publisher.guard?.publish(canonical);
    if (denied !== undefined) return this.#refuse(publisher, 'NOPERM', denied);
    const tooLarge = this.#messageTooLarge(json);
    if (tooLarge !== undefined) return this.#refuse(publisher, 'MESSAGE_TOO_LARGE', tooLarge);
    const relay = this.#relay;
    if (relay !== undefined) {
      if (!relay.connected) {
        return this.#refuse(
          publisher,
          'UNAVAILABLE',
          "not published: this node cannot reach the Redis backend, so other nodes' subscribers would miss it (retry)",
        );
      }
      relay.publish(canonical, json, publisher.fromJson);
    }
    this.#publishes++;
    return this.#deliver(canonical, json, publisher.from, publisher.fromJson);
  }

  /**
   * Publishes as the server on a `$sys` channel (`$sys^shutdown`, `$sys^server^...`); `from` is
   * `"$server"`. Only server code can call this: no command reaches it. Throws on a channel
   * outside `$sys` (a programming error).
   */
  publishSystem(channel: string, json: JsonText): number {
    const canonical = parseChannel(channel, this.#channels.rules);
    if (typeof canonical !== 'string') throw new RangeError(canonical.message);
    if (!isSystemChannel(canonical)) {
      throw new RangeError(`publishSystem: ${JSON.stringify(canonical)} is not under ${SYSTEM_SEGMENT}`);
    }
    this.#publishes++;
    return this.#deliver(canonical, json, this.#server.from, this.#server.fromJson);
  }

  /**
   * Another node's publish (the relay's): delivered to this node's subscribers, after the checks
   * this node would have made (a canonical channel, not a `$` one, one line of JSON) since anything
   * that can write to the backend could have sent it.
   */
  deliverRelayed(channel: string, json: JsonText, fromJson: string): void {
    if (parseChannel(channel, this.#channels.rules) !== channel || isReserved(channel)) return;
    if (json.length === 0 || json.includes('\n')) return;
    let from: unknown;
    try {
      from = JSON.parse(fromJson);
    } catch {
      return;
    }
    if (typeof from !== 'string' && !Number.isSafeInteger(from)) return;
    this.#relayed++;
    this.#deliver(channel, json, from as string | number, fromJson);
  }

  /**
   * Resolves once the subscriptions made so far receive other nodes' publishes (SUBSCRIBE answers
   * then); undefined when nothing is pending (always, without a relay).
   */
  relaying(): Promise<void> | undefined {
    if (this.#watching.size === 0) return undefined;
    return Promise.all(this.#watching).then(() => {});
  }

  /**
   * The node's connection to the shared backend dropped: other nodes' publishes and changes may be
   * missing from now until it is back. Every subscriber that could have heard one gets a `gap`.
   */
  backendLost(): void {
    for (const subscriber of [...this.#active]) {
      let concerned = subscriber.keys.size > 0;
      if (!concerned) {
        for (const sub of subscriber.channels.values()) {
          if (reachesOtherNodes(sub.pattern)) {
            concerned = true;
            break;
          }
        }
      }
      if (concerned) subscriber.lost();
    }
  }

  /** In-process publish (local.ts): server identity, no rate limit, same channel rules. */
  publishLocal(channel: string, json: JsonText): number | PubSubRefusal {
    return this.publish(channel, json, this.#server);
  }

  #messageTooLarge(json: JsonText): string | undefined {
    const max = this.limits.maxMessageBytes;
    // A UTF-16 unit is at most 3 UTF-8 bytes (a surrogate pair, 2 units, is 4) and at least 1: most
    // messages are decided by their length alone, without counting bytes.
    if (json.length * 3 <= max) return undefined;
    const got = json.length > max ? `at least ${json.length}` : Buffer.byteLength(json);
    if (typeof got === 'number' && got <= max) return undefined;
    return `message: larger than ${max} bytes as JSON (got ${got}); publish a reference to the data instead, or raise --max-message-bytes`;
  }

  #deliver(channel: string, json: JsonText, from: string | number, fromJson: string): number {
    const matched = this.#depth === 0 ? this.#scratch : [];
    this.#channels.index.match(channel, matched);
    if (matched.length === 0) return 0;
    const message = new Message(channel, json, from, fromJson, this.#pushes);
    let delivered = 0;
    this.#depth++;
    try {
      for (let i = 0; i < matched.length; i++) {
        const sub = matched[i]!;
        if (!sub.active) continue;
        const outcome = sub.subscriber.message(message, sub);
        if (outcome === DELIVERED) delivered++;
        else if (outcome === GONE) this.release(sub.subscriber);
      }
    } finally {
      this.#depth--;
      // Drop the references: the buffer must not keep released subscribers alive.
      matched.length = 0;
    }
    this.#messagesDelivered += delivered;
    return delivered;
  }

  // ---- observing --------------------------------------------------------------------------------

  /** The store's change listener (pass to `store.onChange`). Costs one check while nobody observes. */
  readonly onStoreChange: ChangeListener = (op: ChangeOp, key: string, value: JsonText | undefined): void => {
    const index = this.#keys.index;
    if (index.size === 0) return;
    const matched = this.#depth === 0 ? this.#scratch : [];
    if (op === 'drop') index.matchUnder(key, matched);
    else index.match(key, matched);
    if (matched.length === 0) return;
    const change = new Change(key, op, value, this.#pushes);
    const stamp = ++this.#changeStamp;
    let delivered = 0;
    this.#depth++;
    try {
      for (let i = 0; i < matched.length; i++) {
        const sub = matched[i]!;
        const subscriber = sub.subscriber;
        if (!sub.active || subscriber.changeStamp === stamp) continue;
        subscriber.changeStamp = stamp;
        const outcome = subscriber.change(change);
        if (outcome === DELIVERED) delivered++;
        else if (outcome === GONE) this.release(subscriber);
      }
    } finally {
      this.#depth--;
      matched.length = 0;
    }
    this.#changesDelivered += delivered;
  };

  // ---- refusals and stats -----------------------------------------------------------------------

  #refuse(who: Publisher | Subscriber, code: RefusalCode, message: string): PubSubRefusal {
    this.#refused[code]++;
    if ('refused' in who) who.refused(code, message);
    return new PubSubRefusal(code, message);
  }

  /** Logs a fault of an in-process handler (sampled: a handler throwing per message cannot flood). */
  handlerFault(err: unknown, what: { channel?: string; key?: string; pattern?: string }): void {
    this.#faults.log('error', { err, ...what }, 'pubsub handler threw; delivery to others continues');
  }

  stats(): BrokerStats {
    return {
      subscribers: this.#subscribers,
      subscriptions: this.#channels.index.size,
      observations: this.#keys.index.size,
      publishes: this.#publishes,
      relayed: this.#relayed,
      messagesDelivered: this.#messagesDelivered,
      changesDelivered: this.#changesDelivered,
      dropped: this.#output.dropped,
      slowDisconnected: this.#output.slowDisconnected,
      refused: { ...this.#refused },
    };
  }

  /** Index sizes for tests and INFO: they return exactly to their earlier values when subscribers leave. */
  get indexNodes(): { channels: number; keys: number } {
    return { channels: this.#channels.index.nodeCount, keys: this.#keys.index.nodeCount };
  }
}
