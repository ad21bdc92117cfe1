/**
 * The in-process API (`server.pubsub`): a Node.js program embedding caretkv subscribes to
 * channels and observes keys with plain callables, and publishes as the server.
 *
 *   const off = server.pubsub.subscribe('orders^>', (event) => ship(event.message), { signal });
 *   server.pubsub.observe('users^*', (change, view) => view.refresh(change), { owner: view });
 *
 * Each call returns an idempotent function that ends that subscription. It also ends when
 * - `signal` aborts (an already aborted signal subscribes nothing), or
 * - `owner` is garbage-collected. The owner is held weakly (WeakRef + FinalizationRegistry) and
 *   passed to the handler as its second argument, so the handler need not capture it. A handler
 *   that closes over its owner keeps the owner alive for as long as the subscription lives: pass
 *   it through the second argument instead.
 *
 * A handler that throws (or returns a promise that rejects) is logged, sampled, and delivery to
 * the other subscribers goes on. A handler may end its own or other subscriptions while it runs;
 * a subscription ended mid-delivery receives nothing more, even from the message in flight.
 * Each handler gets its own parsed copy of the message or value, so no handler can change what
 * another sees.
 */
import type { ChangeOp, JsonText } from '../store/store.js';
import { type PublisherId, PubSubError, PubSubRefusal } from './limits.js';
import {
  type Change,
  DELIVERED,
  GONE,
  type Message,
  type Outcome,
  Subscriber,
  type Subscription,
} from './subscriber.js';
import type { BrokerCore } from './types.js';

export interface MessageEvent {
  /** The channel it was published on. */
  readonly channel: string;
  /** The subscription's pattern that matched. */
  readonly pattern: string;
  readonly message: unknown;
  /** The publisher: a connection id, or `"$server"` for the server and the embedding program. */
  readonly from: PublisherId;
}

export interface ChangeEvent {
  /** The key that changed; for `drop`, the namespace that was removed. */
  readonly key: string;
  readonly op: ChangeOp;
  /** The new value for set / incr / cas; absent for del / expire / drop. */
  readonly value?: unknown;
}

export interface ListenOptions {
  /** Aborting it ends the subscription. */
  signal?: AbortSignal;
}

export interface OwnedListenOptions<O extends object> extends ListenOptions {
  /** Held weakly; when it is collected the subscription ends. Passed to the handler. */
  owner: O;
}

/** Ends a subscription; calling it again does nothing. */
export type Unsubscribe = () => void;

type AnyHandler = (event: never, owner: never) => unknown;

/** An in-process subscription: one handler, one pattern. */
class LocalSubscriber extends Subscriber {
  readonly limited = false;
  /** Set once subscribed: ends the subscription and its abort/finalization hooks. */
  dispose: Unsubscribe = noop;

  constructor(
    private readonly broker: BrokerCore,
    private readonly handler: (event: unknown, owner: unknown) => unknown,
    private readonly owner: WeakRef<object> | undefined,
  ) {
    super();
  }

  message(message: Message, subscription: Subscription): Outcome {
    const owner = this.#owner();
    if (owner === COLLECTED) return GONE;
    const event: MessageEvent = {
      channel: message.channel,
      pattern: subscription.pattern.text,
      message: JSON.parse(message.json),
      from: message.from,
    };
    this.#run(event, owner, { channel: message.channel, pattern: subscription.pattern.text });
    return DELIVERED;
  }

  change(change: Change): Outcome {
    const owner = this.#owner();
    if (owner === COLLECTED) return GONE;
    const event: ChangeEvent =
      change.value === undefined
        ? { key: change.key, op: change.op }
        : { key: change.key, op: change.op, value: JSON.parse(change.value) };
    this.#run(event, owner, { key: change.key });
    return DELIVERED;
  }

  #owner(): object | undefined | typeof COLLECTED {
    if (this.owner === undefined) return undefined;
    const owner = this.owner.deref();
    if (owner !== undefined) return owner;
    // Collected and the finalizer has not run yet: end it now rather than call into nothing.
    this.dispose();
    return COLLECTED;
  }

  #run(event: MessageEvent | ChangeEvent, owner: object | undefined, where: FaultContext): void {
    try {
      const result = this.handler(event, owner);
      if (isPromiseLike(result))
        result.then(undefined, (err: unknown) => this.broker.handlerFault(err, where));
    } catch (err) {
      this.broker.handlerFault(err, where);
    }
  }
}

const COLLECTED = Symbol('collected');

type FaultContext = { channel?: string; pattern?: string; key?: string };

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
  );
}

function noop(): void {}

/** Ends subscriptions whose owner was collected. The held value is the subscriber, never the owner. */
const collected = new FinalizationRegistry<LocalSubscriber>((subscriber) => subscriber.dispose());

function unwrap<T>(result: T | PubSubRefusal): T {
  if (result instanceof PubSubRefusal) throw new PubSubError(result.code, result.message);
  return result;
}

export class PubSub {
  constructor(private readonly broker: BrokerCore) {}

  /** Calls `handler` for every message on a channel matching `pattern` (`*` and `>` wildcards). */
  subscribe(pattern: string, handler: (event: MessageEvent) => unknown, options?: ListenOptions): Unsubscribe;
  subscribe<O extends object>(
    pattern: string,
    handler: (event: MessageEvent, owner: O) => unknown,
    options: OwnedListenOptions<O>,
  ): Unsubscribe;
  subscribe(pattern: string, handler: AnyHandler, options?: ListenOptions & { owner?: object }): Unsubscribe {
    return this.#listen('channel', pattern, handler, options);
  }

  /** Calls `handler` for every change of a key matching `pattern` (see broker.ts for DROP). */
  observe(pattern: string, handler: (event: ChangeEvent) => unknown, options?: ListenOptions): Unsubscribe;
  observe<O extends object>(
    pattern: string,
    handler: (event: ChangeEvent, owner: O) => unknown,
    options: OwnedListenOptions<O>,
  ): Unsubscribe;
  observe(pattern: string, handler: AnyHandler, options?: ListenOptions & { owner?: object }): Unsubscribe {
    return this.#listen('key', pattern, handler, options);
  }

  /**
   * Publishes `message` (any JSON-serializable value) as the server. Returns how many pushes were
   * delivered. Throws `PubSubError` for a malformed or reserved (`$`) channel or an oversized
   * message; use `publishSystem` for `$sys` channels.
   */
  publish(channel: string, message: unknown): number {
    return unwrap(this.broker.publishLocal(channel, toJson(message)));
  }

  /** Publishes on a `$sys` channel, where no client can. */
  publishSystem(channel: string, message: unknown): number {
    return this.broker.publishSystem(channel, toJson(message));
  }

  #listen(
    kind: 'channel' | 'key',
    pattern: string,
    handler: AnyHandler,
    options: (ListenOptions & { owner?: object }) | undefined,
  ): Unsubscribe {
    if (typeof handler !== 'function') throw new TypeError('handler: must be a function');
    const signal = options?.signal;
    const owner = options?.owner;
    if (owner !== undefined && (typeof owner !== 'object' || owner === null) && typeof owner !== 'function') {
      throw new TypeError('owner: must be an object (it is held weakly)');
    }
    const broker = this.broker;
    const subscriber = new LocalSubscriber(
      broker,
      handler as (event: unknown, owner: unknown) => unknown,
      owner === undefined ? undefined : new WeakRef(owner),
    );
    // Validate before looking at the signal: a bad pattern is a bug even with an aborted signal.
    unwrap(
      kind === 'channel'
        ? broker.subscribe(subscriber, [pattern], 'pattern')
        : broker.observe(subscriber, [pattern], 'pattern'),
    );
    if (signal?.aborted) {
      broker.release(subscriber);
      return noop;
    }
    if (owner !== undefined) collected.register(owner, subscriber, subscriber);
    const dispose = disposer(broker, subscriber, signal);
    subscriber.dispose = dispose;
    signal?.addEventListener('abort', dispose, { once: true });
    return dispose;
  }
}

/**
 * The function that ends a subscription. Built outside `#listen` on purpose: a closure there
 * would share its scope, which holds the owner, and the broker (through `subscriber.dispose`)
 * would then keep the owner alive forever.
 */
function disposer(
  broker: BrokerCore,
  subscriber: LocalSubscriber,
  signal: AbortSignal | undefined,
): Unsubscribe {
  let done = false;
  const dispose = (): void => {
    if (done) return;
    done = true;
    broker.release(subscriber);
    signal?.removeEventListener('abort', dispose);
    collected.unregister(subscriber);
  };
  return dispose;
}

function toJson(message: unknown): JsonText {
  const json = JSON.stringify(message);
  if (json === undefined) throw new TypeError('message: must be a JSON value (got undefined or a function)');
  return json;
}
