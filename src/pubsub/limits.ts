/**
 * The broker's limits, their defaults, the publish rate bucket, and what a refusal looks like.
 *
 * Defaults, and why:
 * - `subscriberBuffer` 1 MiB: the most output a subscriber's connection may have pending before
 *   pushes are dropped (or it is disconnected). Thousands of typical messages of headroom for a
 *   reader that hiccups, yet a stalled subscriber holds 32 times less than under Redis's default
 *   pub/sub hard limit (32 MB).
 * - `maxMessageBytes` 256 KiB: pub/sub carries events, not blobs (NATS defaults to 1 MB, and
 *   advises far less); keeps one message well inside `subscriberBuffer`.
 * - `maxChannelLength` 256: channel names are identifiers; keys allow 1024.
 * - `maxSubscriptions` 10 000 per connection (channel patterns and key patterns together).
 * - `maxPublishRate` 100 000 per second per connection, with a one-second burst: far above what one
 *   well-behaved connection does, low enough that a runaway loop cannot own the broker. 0 = no limit.
 */

export type SlowSubscriberPolicy = 'drop' | 'disconnect';

export interface BrokerLimits {
  /** Pending output bytes above which a subscriber's pushes are dropped or it is disconnected. */
  readonly subscriberBuffer: number;
  /** What happens to a subscriber over `subscriberBuffer`. */
  readonly slowSubscriber: SlowSubscriberPolicy;
  /** Largest message, in bytes of its JSON text (UTF-8). */
  readonly maxMessageBytes: number;
  /** Longest channel name or channel pattern, in UTF-16 code units. */
  readonly maxChannelLength: number;
  /** Most subscriptions plus observations per connection. */
  readonly maxSubscriptions: number;
  /** Publishes per second per connection (token bucket, burst of one second); 0 = unlimited. */
  readonly maxPublishRate: number;
}

export const DEFAULT_BROKER_LIMITS: BrokerLimits = Object.freeze({
  subscriberBuffer: 1024 * 1024,
  slowSubscriber: 'drop',
  maxMessageBytes: 256 * 1024,
  maxChannelLength: 256,
  maxSubscriptions: 10_000,
  maxPublishRate: 100_000,
});

/** Validates a limits object (the config schema does it for users; this guards embedders). */
export function resolveLimits(partial: Partial<BrokerLimits> = {}): BrokerLimits {
  const limits = { ...DEFAULT_BROKER_LIMITS, ...stripUndefined(partial) };
  const positive = ['subscriberBuffer', 'maxMessageBytes', 'maxChannelLength', 'maxSubscriptions'] as const;
  for (const name of positive) {
    const v = limits[name];
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`pubsub limit ${name}: must be an integer >= 1`);
  }
  if (!(Number.isFinite(limits.maxPublishRate) && limits.maxPublishRate >= 0)) {
    throw new RangeError('pubsub limit maxPublishRate: must be a number >= 0 (0 = unlimited)');
  }
  if (limits.slowSubscriber !== 'drop' && limits.slowSubscriber !== 'disconnect') {
    throw new RangeError('pubsub limit slowSubscriber: must be "drop" or "disconnect"');
  }
  return Object.freeze(limits);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/**
 * A token bucket: `rate` tokens per second, holding at most `rate` (one second of burst).
 * Refilled lazily on `take`, so an idle bucket costs nothing.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly #perMs: number;
  readonly #capacity: number;

  constructor(
    rate: number,
    private readonly now: () => number,
  ) {
    this.#capacity = Math.max(1, rate);
    this.#perMs = rate / 1000;
    this.#tokens = this.#capacity;
    this.#last = now();
  }

  take(): boolean {
    if (this.#tokens < 1) {
      const now = this.now();
      this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#last) * this.#perMs);
      this.#last = now;
      if (this.#tokens < 1) return false;
    }
    this.#tokens -= 1;
    return true;
  }
}

/**
 * Codes a pub/sub refusal carries. They are protocol error codes (src/protocol/errors.ts), kept
 * as a list here so the broker needs nothing from the protocol layer above it.
 */
export const REFUSAL_CODES = [
  'BAD_CHANNEL',
  'BAD_KEY',
  'NOPERM',
  'RATE_LIMITED',
  'MESSAGE_TOO_LARGE',
  'TOO_MANY_SUBSCRIPTIONS',
  'UNAVAILABLE',
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/** A refused request, returned (not thrown): routine for a server, so it captures no stack. */
export class PubSubRefusal {
  constructor(
    readonly code: RefusalCode,
    readonly message: string,
  ) {}
}

/** Thrown by the in-process API, where a refusal is the calling program's bug. */
export class PubSubError extends Error {
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
    this.name = 'PubSubError';
  }
}

/**
 * Per-user permission checks (issue 7), supplied by the layer that knows the user (the pub/sub
 * commands attach one built on the connection's auth). Each gets a validated, canonical channel or
 * pattern and returns why it is refused, or undefined. Reserved (`$`) channels are refused for
 * publishing before a guard is asked.
 */
export interface AccessGuard {
  publish(channel: string): string | undefined;
  subscribe(pattern: string): string | undefined;
  observe(pattern: string): string | undefined;
}

/** Who published: the server stamps it; a client can neither set nor spoof it. */
export type PublisherId = string | number;

/** Who publishes: the identity stamped on messages and the rate bucket it spends. */
export interface Publisher {
  readonly from: PublisherId;
  /** `from` as JSON, serialized once. */
  readonly fromJson: string;
  /** Undefined: not rate limited. */
  readonly rate: TokenBucket | undefined;
  /** Undefined: no per-user permissions (the server itself, an open server). */
  readonly guard: AccessGuard | undefined;
  /** Told about each refusal (for sampled logging). */
  refused(code: RefusalCode, message: string): void;
}
