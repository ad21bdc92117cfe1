/**
 * The client's pub/sub state: which patterns this client holds on the server, which
 * subscriptions each push goes to, and the handshake step that holds them again on every new
 * connection (ioredis's resubscription after reconnect).
 *
 * The server keeps one subscription per pattern per connection, so several `Subscription`s may
 * share a pattern: the hub counts them, subscribes a pattern when the first one wants it and
 * unsubscribes it when the last one lets go. A `message` push names its pattern, which picks the
 * subscriptions; a `change` push does not (the server sends one per observing connection), so
 * the hub matches the key against each observation's patterns with the server's rules.
 */
import { ONE, REST, SEPARATOR, segmentsOf } from '../path.js';
import type { PushMessage, RawRequest } from './core.js';
import { CaretError, CLIENT_ERRORS, clientError } from './errors.js';
import type {
  AnySubscription,
  ChangeOp,
  SubscriptionChange,
  SubscriptionHub,
  SubscriptionMessage,
  SubscriptionSink,
} from './subscription.js';

type Kind = 'channels' | 'keys';
type State = 'wait' | 'connecting' | 'ready' | 'reconnecting' | 'closing' | 'closed';

/** What the hub needs of the client. */
export interface HubClient {
  readonly state: State;
  send(request: RawRequest): Promise<unknown>;
  connect(): Promise<void>;
}

interface Entry {
  readonly subscription: AnySubscription;
  readonly sink: SubscriptionSink<SubscriptionMessage | SubscriptionChange>;
  readonly kind: Kind;
  /** Canonical patterns it holds; split into segments for key matching. */
  readonly patterns: Map<string, readonly string[]>;
  /** Confirmed on some connection already: the next confirmation is a resubscription. */
  confirmed: boolean;
}

const ACTIONS = {
  channels: { add: 'SUBSCRIBE', remove: 'UNSUBSCRIBE' },
  keys: { add: 'OBSERVE', remove: 'UNOBSERVE' },
} as const;

/** The server's batch limit (schema.ts's LIMITS.maxBatch): patterns per request. */
const MAX_PATTERNS_PER_REQUEST = 10_000;

/** A refusal by the server (a catalogue code), as opposed to a failure of the connection. */
function isRefusal(err: unknown): err is CaretError {
  return err instanceof CaretError && !Object.hasOwn(CLIENT_ERRORS, err.code);
}

/** The server's canonical form: no leading `^`. */
function canonical(pattern: string): string {
  return pattern.charCodeAt(0) === 0x5e ? pattern.slice(1) : pattern;
}

/**
 * Whether a key pattern's segments match a key (src/pubsub/pattern.ts `matches`, for keys: `*`
 * one segment, a final `>` one or more; keys have no reserved prefix). A test checks the two agree.
 */
export function keyMatches(pattern: readonly string[], key: string): boolean {
  const segs = key.split(SEPARATOR);
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === REST) return segs.length > i;
    if (i >= segs.length) return false;
    if (p !== ONE && p !== segs[i]) return false;
  }
  return segs.length === pattern.length;
}

/** Whether a key pattern could match a key below `namespace` (pattern.ts `matchesUnder`): who hears a DROP. */
export function matchesUnder(pattern: readonly string[], namespace: string): boolean {
  const ns = segmentsOf(namespace);
  for (let i = 0; i < ns.length; i++) {
    const p = pattern[i];
    if (p === undefined) return false;
    if (p === REST) return true;
    if (p !== ONE && p !== ns[i]) return false;
  }
  return pattern.length > ns.length;
}

export class PubSubHub implements SubscriptionHub {
  /** Pattern -> the subscriptions holding it, per kind. */
  readonly #held: Record<Kind, Map<string, Set<Entry>>> = { channels: new Map(), keys: new Map() };
  readonly #entries = new Map<AnySubscription, Entry>();
  /** Counts connections ('connect' events); `#restoredOn` is the one the handshake last ran on. */
  #connection = 0;
  #restoredOn = -1;

  constructor(private readonly client: HubClient) {}

  /** How many subscriptions are live. */
  get size(): number {
    return this.#entries.size;
  }

  // ------------------------------------------------------------ subscriptions

  attach(
    subscription: AnySubscription,
    sink: SubscriptionSink<SubscriptionMessage | SubscriptionChange>,
  ): void {
    const kind = subscription.kind;
    const patterns = new Map(subscription.patterns.map((p) => [p, p.split(SEPARATOR)]));
    const entry: Entry = { subscription, sink, kind, patterns, confirmed: false };
    const state = this.client.state;
    if (state === 'closing' || state === 'closed') {
      sink.end(clientError('CONNECTION_CLOSED', ACTIONS[kind].add, undefined, 'close() was called'));
      return;
    }
    this.#entries.set(subscription, entry);
    for (const pattern of patterns.keys()) this.#hold(kind, pattern, entry);
    if (this.#live()) {
      this.client.send({ action: ACTIONS[kind].add, [kind]: [...patterns.keys()] }).then(
        () => this.#confirm(entry),
        (err: unknown) => {
          // A lost connection is the handshake's business: it subscribes again on the next one.
          if (isRefusal(err)) this.#end(entry, err);
        },
      );
    } else if (state === 'wait') {
      // lazyConnect: a subscription is a reason to connect; the handshake subscribes it.
      this.client.connect().catch(() => {});
    }
  }

  detach(subscription: AnySubscription): Promise<void> {
    const entry = this.#entries.get(subscription);
    if (entry === undefined) return Promise.resolve();
    return this.#release(entry);
  }

  /**
   * Whether a request sent now reaches the server on a connection that already holds (or is being
   * given) every pattern: otherwise the next handshake subscribes for it.
   */
  #live(): boolean {
    const state = this.client.state;
    // While a handshake runs, requests queue behind it and go out when it is done, in order.
    return state === 'ready' || (state === 'connecting' && this.#restoredOn === this.#connection);
  }

  #hold(kind: Kind, pattern: string, entry: Entry): void {
    let set = this.#held[kind].get(pattern);
    if (set === undefined) {
      set = new Set();
      this.#held[kind].set(pattern, set);
    }
    set.add(entry);
  }

  /** Forget an entry; tell the server about the patterns nobody else holds. */
  #release(entry: Entry): Promise<void> {
    this.#entries.delete(entry.subscription);
    const orphans: string[] = [];
    for (const pattern of entry.patterns.keys()) {
      const set = this.#held[entry.kind].get(pattern);
      if (set === undefined) continue;
      set.delete(entry);
      if (set.size === 0) {
        this.#held[entry.kind].delete(pattern);
        orphans.push(pattern);
      }
    }
    entry.patterns.clear();
    if (orphans.length === 0 || !this.#live()) return Promise.resolve();
    const { remove } = ACTIONS[entry.kind];
    const sent: Promise<unknown>[] = [];
    for (let i = 0; i < orphans.length; i += MAX_PATTERNS_PER_REQUEST) {
      const chunk = orphans.slice(i, i + MAX_PATTERNS_PER_REQUEST);
      // Nothing to do about a failure: a lost connection takes the server's subscriptions with it.
      sent.push(this.client.send({ action: remove, [entry.kind]: chunk }).catch(() => {}));
    }
    return Promise.all(sent).then(() => {});
  }

  #confirm(entry: Entry): void {
    if (!this.#entries.has(entry.subscription)) return;
    if (entry.confirmed) entry.sink.resubscribed();
    entry.confirmed = true;
    entry.sink.confirm();
  }

  #end(entry: Entry, error?: CaretError): void {
    if (this.#entries.has(entry.subscription)) void this.#release(entry);
    entry.sink.end(error);
  }

  /** The client is closing (or closed): every subscription ends; `error` when it did not choose to. */
  endAll(error?: CaretError): void {
    for (const entry of [...this.#entries.values()]) {
      this.#entries.delete(entry.subscription);
      entry.sink.end(error);
    }
    this.#held.channels.clear();
    this.#held.keys.clear();
  }

  // ------------------------------------------------------------ connection

  /** Listener for the client's 'connect' event. */
  readonly onConnect = (): void => {
    this.#connection++;
  };

  /** Listener for the client's 'close' event: until the next handshake, nothing is live. */
  readonly onClose = (): void => {
    this.#restoredOn = -1;
  };

  /**
   * Handshake step: hold every pattern again on the new connection (the server forgot them with
   * the old one), then confirm each subscription. A pattern the server now refuses (permissions
   * changed while disconnected) ends the subscriptions holding it, not the connection.
   */
  readonly handshake = async (send: (request: RawRequest) => Promise<unknown>): Promise<void> => {
    this.#restoredOn = this.#connection;
    const entries = [...this.#entries.values()];
    for (const kind of ['channels', 'keys'] as const) {
      const patterns = [...this.#held[kind].keys()];
      for (let i = 0; i < patterns.length; i += MAX_PATTERNS_PER_REQUEST) {
        await this.#restore(send, kind, patterns.slice(i, i + MAX_PATTERNS_PER_REQUEST));
      }
    }
    for (const entry of entries) this.#confirm(entry);
  };

  async #restore(
    send: (request: RawRequest) => Promise<unknown>,
    kind: Kind,
    patterns: string[],
  ): Promise<void> {
    const action = ACTIONS[kind].add;
    try {
      await send({ action, [kind]: patterns });
      return;
    } catch (err) {
      if (!isRefusal(err)) throw err;
    }
    // The server checks a batch as a whole: find the patterns it refuses one by one.
    const outcomes = await Promise.allSettled(patterns.map((p) => send({ action, [kind]: [p] })));
    for (let i = 0; i < outcomes.length; i++) {
      const outcome = outcomes[i]!;
      if (outcome.status === 'fulfilled') continue;
      if (!isRefusal(outcome.reason)) throw outcome.reason;
      for (const entry of [...(this.#held[kind].get(patterns[i]!) ?? [])]) this.#end(entry, outcome.reason);
    }
  }

  // ------------------------------------------------------------ pushes

  /** Listener for the client's 'push' event. */
  readonly onPush = (push: PushMessage): void => {
    switch (push.event) {
      case 'message':
        this.#onMessage(push);
        break;
      case 'change':
        this.#onChange(push);
        break;
      case 'gap':
        if (typeof push.dropped === 'number') {
          for (const entry of [...this.#entries.values()]) entry.sink.gap(push.dropped);
        } else if (push.reason === 'backend') {
          for (const entry of [...this.#entries.values()]) entry.sink.gap(0, 'backend');
        }
        break;
      case 'revoked':
        this.#onRevoked(push);
        break;
    }
  };

  #onMessage(push: PushMessage): void {
    const set = this.#held.channels.get(String(push.pattern));
    if (set === undefined) return;
    const { channel, pattern, message, from, seq } = push as unknown as SubscriptionMessage;
    for (const entry of [...set]) {
      entry.sink.deliver({ type: 'message', channel, pattern, message, from, seq });
    }
  }

  #onChange(push: PushMessage): void {
    const { key, op, seq } = push as unknown as SubscriptionChange;
    if (typeof key !== 'string') return;
    const below = (op as ChangeOp) === 'drop';
    const item: SubscriptionChange =
      'value' in push
        ? { type: 'change', key, op, value: push.value, seq }
        : { type: 'change', key, op, seq };
    for (const entry of [...this.#entries.values()]) {
      if (entry.kind !== 'keys') continue;
      for (const segments of entry.patterns.values()) {
        if (below ? matchesUnder(segments, key) : keyMatches(segments, key)) {
          entry.sink.deliver(item);
          break;
        }
      }
    }
  }

  /** The server ended these patterns itself: forget them (no UNSUBSCRIBE), end who has none left. */
  #onRevoked(push: PushMessage): void {
    const reason = typeof push.reason === 'string' ? push.reason : 'the server revoked the subscription';
    const touched = new Map<Entry, string[]>();
    for (const kind of ['channels', 'keys'] as const) {
      const list = push[kind];
      if (!Array.isArray(list)) continue;
      for (const raw of list) {
        const pattern = canonical(String(raw));
        const set = this.#held[kind].get(pattern);
        if (set === undefined) continue;
        this.#held[kind].delete(pattern);
        for (const entry of set) {
          entry.patterns.delete(pattern);
          const patterns = touched.get(entry) ?? [];
          patterns.push(pattern);
          touched.set(entry, patterns);
        }
      }
    }
    for (const [entry, patterns] of touched) {
      entry.sink.revoke({ patterns, reason });
      if (entry.patterns.size === 0) {
        this.#entries.delete(entry.subscription);
        entry.sink.end(clientError('SUBSCRIPTION_REVOKED', ACTIONS[entry.kind].add, undefined, reason));
      }
    }
  }
}
