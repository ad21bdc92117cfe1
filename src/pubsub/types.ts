/**
 * What the in-process API (local.ts) needs from the broker, so it depends on this interface and
 * not on broker.ts (which creates it). The whole broker's interface is `PubSubBroker` in broker.ts.
 */
import type { JsonText } from '../store/store.js';
import type { PubSubRefusal } from './limits.js';
import type { Pattern } from './pattern.js';
import type { Subscriber } from './subscriber.js';

/** What in-process subscribers (local.ts) use: subscriptions, publishing, fault reporting. */
export interface BrokerCore {
  subscribe(subscriber: Subscriber, patterns: readonly string[], field?: string): number | PubSubRefusal;
  observe(subscriber: Subscriber, patterns: readonly string[], field?: string): number | PubSubRefusal;
  release(subscriber: Subscriber): void;
  /** Publishes as the server's own code (rate and permission checks do not apply). */
  publishLocal(channel: string, json: JsonText): number | PubSubRefusal;
  /** Publishes on a `$` system channel. */
  publishSystem(channel: string, json: JsonText): number;
  /** A local handler threw: logged (sampled), never the publisher's problem. */
  handlerFault(err: unknown, what: { channel?: string; key?: string; pattern?: string }): void;
}

/**
 * Carries publishes between the nodes of one deployment (cluster mode: pubsub/redis-relay.ts).
 * A lone server has none. The broker tells it which channel patterns this node's subscribers hold
 * (once per subscription: the relay counts them) and hands it every client publish it accepts;
 * it hands back other nodes' publishes, which the broker filters with its own exact rules. A lost
 * backend connection reaches the broker from the store (`Store.onEventsLost`, the same connection).
 */
export interface Relay {
  /** Where other nodes' publishes and losses go (the broker; called once). */
  attach(sink: RelaySink): void;
  /** Whether publishes can reach other nodes now (the backend is connected). */
  readonly connected: boolean;
  /** A publish this node accepted and delivered to its own subscribers. */
  publish(channel: string, json: JsonText, fromJson: string): void;
  /**
   * A subscription to a channel pattern began on this node. A promise says when other nodes'
   * publishes start reaching it (none: they already do, or will once the backend is back).
   */
  watch(pattern: Pattern): Promise<void> | undefined;
  /** One ended. */
  unwatch(pattern: Pattern): void;
  close(): Promise<void>;
}

export interface RelaySink {
  /** Another node's publish, for this node's matching subscribers. */
  deliverRelayed(channel: string, json: JsonText, fromJson: string): void;
}
