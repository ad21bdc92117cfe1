import { EventEmitter } from 'node:events';
import type { PushOf } from '../protocol/pushes.js';
import type { CaretError } from './errors.js';
import { RingQueue } from './queue.js';

/** What a key change was (the server's `op`). */
/** What happened to an observed key: the `op` of the protocol's `change` push (protocol/pushes.ts). */
export type ChangeOp = PushOf<'change'>['op'];

type FromPush<P extends 'message' | 'change'> = Readonly<Omit<PushOf<P>, 'event' | 'message' | 'value'>>;

/**
 * A published message, as `db.subscribe()` yields it: the protocol's `message` push (its fields
 * and their documentation come from protocol/pushes.ts), typed by `T`. `channel` is canonical,
 * `pattern` the subscribed pattern that matched (a publish matching two patterns arrives twice),
 * `from` the server's stamp, `seq` the connection's push counter (it restarts at 1 on each new
 * connection).
 */
export type SubscriptionMessage<T = unknown> = FromPush<'message'> & {
  readonly type: 'message';
  readonly message: T;
};

/**
 * A change of an observed key: the protocol's `change` push. For `drop`, `key` is the namespace
 * that was removed with everything below it; `value` is there for `set`, `incr` and `cas` only.
 */
export type SubscriptionChange<T = unknown> = FromPush<'change'> & {
  readonly type: 'change';
  readonly value?: T;
};

/**
 * Items were lost here: `dropped` pushes the server dropped while this connection read too slowly
 * (policy drop), plus items this iterator's buffer dropped while its consumer was too slow (past
 * `highWaterMark`). The server counts per connection, so with several subscriptions on one
 * client each of them hears the server's gaps, which may include another subscription's pushes.
 */
export interface SubscriptionGap {
  readonly type: 'gap';
  readonly dropped: number;
  /**
   * `'backend'`: the server node lost its connection to the shared backend (cluster mode), so
   * items from other nodes may be missing too, how many unknown (they are not in `dropped`).
   */
  readonly reason?: 'backend';
}

/** Patterns the server ended on its own (a permissions change), and why. */
export interface SubscriptionRevoked {
  readonly patterns: readonly string[];
  readonly reason: string;
}

export interface SubscriptionOptions {
  /**
   * Most items the iterator buffers for a consumer that has not asked for them yet. Past it new
   * items are dropped and counted, and a `{type: 'gap'}` item stands in their place, so a slow
   * consumer never grows the client's memory without bound. Default 1000.
   */
  highWaterMark?: number;
  /** Aborting it unsubscribes. */
  signal?: AbortSignal;
}

export const DEFAULT_HIGH_WATER_MARK = 1000;

export interface SubscriptionEvents<I> {
  /** A published message (subscriptions from `subscribe()`). */
  message: [item: I];
  /** A key change (subscriptions from `observe()`). */
  change: [item: I];
  /** The server dropped pushes for this connection (see SubscriptionGap). */
  gap: [gap: SubscriptionGap];
  /** The server ended some of the patterns; when none is left the subscription ends too. */
  revoked: [revoked: SubscriptionRevoked];
  /** Subscribed again on a new connection. Anything published while disconnected was lost. */
  resubscribed: [];
  /** The subscription ended with an error (also thrown by the iterator). Emitted only when listened to. */
  error: [error: CaretError];
  /** The subscription ended, for whatever reason. Emitted once. */
  end: [];
}

/** How the client drives a subscription; not part of the public surface. */
export interface SubscriptionSink<I> {
  deliver(item: I): void;
  gap(dropped: number, reason?: 'backend'): void;
  /** The server confirmed every pattern (on the current connection). */
  confirm(): void;
  resubscribed(): void;
  revoke(revoked: SubscriptionRevoked): void;
  /** End it: `error` for a refusal or revocation, nothing for a normal end. */
  end(error?: CaretError): void;
}

/** The client's side: attaches a new subscription, and detaches one that unsubscribes. */
export interface SubscriptionHub {
  attach(
    subscription: AnySubscription,
    sink: SubscriptionSink<SubscriptionMessage | SubscriptionChange>,
  ): void;
  detach(subscription: AnySubscription): Promise<void>;
}

export type AnySubscription = Subscription<SubscriptionMessage | SubscriptionChange>;

type Waiter<I> = {
  resolve: (result: IteratorResult<I | SubscriptionGap, undefined>) => void;
  reject: (error: CaretError) => void;
};

const DONE: IteratorResult<never, undefined> = { done: true, value: undefined };

/**
 * A live subscription (`db.subscribe()`) or observation (`db.observe()`). Consume it either way:
 *
 *   for await (const item of db.subscribe('news^>')) {      // an async iterator...
 *     if (item.type === 'gap') console.warn(`lost ${item.dropped}`);
 *     else console.log(item.channel, item.message);
 *   }
 *   db.subscribe('news^>').on('message', (m) => ...);       // ...or events
 *
 * Leaving the loop (`break`, `return`, a throw) unsubscribes. The client subscribes again after
 * every reconnect. Delivery is at most once: what is published while the connection is down is
 * lost, and a slow reader loses items too, always marked by a gap item.
 *
 * The iterator buffers items until they are asked for (at most `highWaterMark`, then it drops and
 * counts). It buffers only while it can be read: once it has started, or while nobody listens to
 * 'message' / 'change' (so items published between `await sub.ready` and the loop are kept).
 *
 * It ends when `unsubscribe()` is called or its signal aborts (the iterator finishes), when the
 * client closes (finishes; if the client gave up reconnecting, throws CONNECTION_CLOSED), when the
 * server refuses it (BAD_CHANNEL, NOPERM, TOO_MANY_SUBSCRIPTIONS: `ready` rejects and the iterator
 * throws that error), or when the server revokes every pattern it held (the iterator throws a
 * CaretError with code SUBSCRIPTION_REVOKED, after the items buffered before it).
 */
export class Subscription<I extends SubscriptionMessage | SubscriptionChange>
  extends EventEmitter<SubscriptionEvents<I>>
  implements AsyncIterableIterator<I | SubscriptionGap, undefined>
{
  /** Resolves once the server has confirmed every pattern; rejects if it refused them. */
  readonly ready: Promise<void>;
  readonly highWaterMark: number;

  readonly #hub: SubscriptionHub;
  #patterns: string[];
  readonly #queue = new RingQueue<I | SubscriptionGap>(16);
  #waiter: Waiter<I> | null = null;
  /** Items dropped since the last one queued, reported by the next gap item. */
  #pendingDropped = 0;
  /** The server reported a backend gap since the last item queued (the next gap item says so). */
  #pendingBackend = false;
  #droppedTotal = 0;
  #iterating = false;
  #ended = false;
  #error: CaretError | undefined;
  #confirmed = false;
  #settleReady!: { resolve: () => void; reject: (error: CaretError) => void };

  constructor(
    hub: SubscriptionHub,
    /** `channels` for subscribe(), `keys` for observe(). */
    readonly kind: 'channels' | 'keys',
    patterns: readonly string[],
    options: SubscriptionOptions = {},
  ) {
    super();
    const hwm = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    if (!Number.isSafeInteger(hwm) || hwm < 1) {
      throw new TypeError(`highWaterMark: must be a whole number >= 1 (got ${hwm})`);
    }
    this.highWaterMark = hwm;
    this.#hub = hub;
    // The server's canonical form (no leading `^`): what pushes and revocations name.
    this.#patterns = [...new Set(patterns.map((p) => (p.charCodeAt(0) === 0x5e ? p.slice(1) : p)))];
    this.ready = new Promise<void>((resolve, reject) => {
      this.#settleReady = { resolve, reject };
    });
    // Callers need not await `ready`: a refusal also reaches the iterator and the 'error' event.
    this.ready.catch(() => {});
    hub.attach(
      this as unknown as AnySubscription,
      this.#sink() as unknown as SubscriptionSink<SubscriptionMessage | SubscriptionChange>,
    );
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) void this.unsubscribe();
      else {
        const onAbort = () => void this.unsubscribe();
        signal.addEventListener('abort', onAbort, { once: true });
        this.once('end', () => signal.removeEventListener('abort', onAbort));
      }
    }
  }

  /** The patterns it holds (canonical; revoked ones leave). */
  get patterns(): readonly string[] {
    return this.#patterns;
  }

  /** Whether it has ended. */
  get closed(): boolean {
    return this.#ended;
  }

  /** Items waiting in the iterator's buffer. */
  get buffered(): number {
    return this.#queue.length;
  }

  /** Items the iterator's buffer dropped so far (past highWaterMark); server drops are not counted here. */
  get dropped(): number {
    return this.#droppedTotal;
  }

  /**
   * End it: the server is told (patterns no other subscription of this client holds are
   * unsubscribed), buffered items are discarded and the iterator finishes. Resolves once the
   * server has answered (at once when not connected); never rejects.
   */
  unsubscribe(): Promise<void> {
    if (this.#ended) return Promise.resolve();
    this.#queue.drain();
    this.#pendingDropped = 0;
    this.#pendingBackend = false;
    const detached = this.#hub.detach(this as unknown as AnySubscription);
    this.#finish(undefined);
    return detached;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<I | SubscriptionGap, undefined>> {
    this.#iterating = true;
    const item = this.#queue.shift();
    if (item !== undefined) return Promise.resolve({ done: false, value: item });
    if (this.#pendingDropped > 0 || this.#pendingBackend) {
      return Promise.resolve({ done: false, value: this.#takeGap() });
    }
    if (this.#ended) {
      const error = this.#error;
      if (error === undefined) return Promise.resolve(DONE);
      // Thrown once; a loop that calls next() again after catching it just finishes.
      this.#error = undefined;
      return Promise.reject(error);
    }
    if (this.#waiter !== null) {
      return Promise.reject(new TypeError('next() called again before the previous call settled'));
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** Called when a `for await` loop exits early: unsubscribes without waiting for the server. */
  return(): Promise<IteratorResult<I | SubscriptionGap, undefined>> {
    void this.unsubscribe();
    return Promise.resolve(DONE);
  }

  #sink(): SubscriptionSink<I> {
    return {
      deliver: (item) => {
        this.#emitSafely(item.type as 'message', item);
        if (this.#buffering()) this.#enqueue(item);
      },
      gap: (dropped, reason) => {
        this.#emitSafely(
          'gap',
          reason === undefined ? { type: 'gap', dropped } : { type: 'gap', dropped, reason },
        );
        if (!this.#buffering()) return;
        this.#pendingDropped += dropped;
        if (reason !== undefined) this.#pendingBackend = true;
        if (this.#waiter !== null) this.#wake({ done: false, value: this.#takeGap() });
      },
      confirm: () => {
        if (this.#confirmed || this.#ended) return;
        this.#confirmed = true;
        this.#settleReady.resolve();
      },
      resubscribed: () => {
        if (!this.#ended) this.#emitSafely('resubscribed');
      },
      revoke: (revoked) => {
        if (this.#ended) return;
        const gone = new Set(revoked.patterns);
        this.#patterns = this.#patterns.filter((p) => !gone.has(p));
        this.#emitSafely('revoked', revoked);
      },
      end: (error) => this.#finish(error),
    };
  }

  #buffering(): boolean {
    return this.#iterating || this.listenerCount('message') + this.listenerCount('change') === 0;
  }

  #enqueue(item: I): void {
    if (this.#waiter !== null) {
      // An empty buffer with a reader waiting: nothing can be pending to report first.
      this.#wake({ done: false, value: item });
      return;
    }
    if (this.#queue.length >= this.highWaterMark) {
      this.#pendingDropped++;
      this.#droppedTotal++;
      return;
    }
    // The gap item may take the buffer one past its mark; it is what says items are missing.
    if (this.#pendingDropped > 0 || this.#pendingBackend) this.#queue.push(this.#takeGap());
    this.#queue.push(item);
  }

  #takeGap(): SubscriptionGap {
    const dropped = this.#pendingDropped;
    const backend = this.#pendingBackend;
    this.#pendingDropped = 0;
    this.#pendingBackend = false;
    if (backend) return { type: 'gap', dropped, reason: 'backend' };
    return { type: 'gap', dropped };
  }

  #wake(result: IteratorResult<I | SubscriptionGap, undefined>): void {
    const waiter = this.#waiter!;
    this.#waiter = null;
    waiter.resolve(result);
  }

  #finish(error: CaretError | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    if (!this.#confirmed) {
      if (error === undefined) this.#settleReady.resolve();
      else this.#settleReady.reject(error);
    }
    const waiter = this.#waiter;
    if (waiter !== null) {
      this.#waiter = null;
      if (error === undefined) waiter.resolve(DONE);
      else {
        this.#error = undefined;
        waiter.reject(error);
      }
    }
    if (error !== undefined && this.listenerCount('error') > 0) this.#emitSafely('error', error);
    this.#emitSafely('end');
  }

  /**
   * A listener that throws must not break the client's reading of the connection (the push came
   * from its socket handler): the error is rethrown on its own, like an error in any callback.
   */
  #emitSafely<E extends keyof SubscriptionEvents<I>>(event: E, ...args: SubscriptionEvents<I>[E]): void {
    try {
      (this.emit as (event: string, ...args: unknown[]) => boolean)(event, ...args);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}
