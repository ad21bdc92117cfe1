/**
 * What the in-process API (local.ts) needs from the broker, so it depends on this interface and
 * not on broker.ts (which creates it). The whole broker's interface is `PubSubBroker` in broker.ts.
 */
import type { JsonText } from '../store/store.js';
import type { PubSubRefusal } from './limits.js';
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
