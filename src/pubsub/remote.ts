/**
 * A connection's pub/sub side: its subscriptions and observations, the `seq` of its pushes, its
 * output bound, and its publish rate.
 *
 * Bounded output. Pushes are written straight to the connection, never queued in JS: the bound is
 * the connection's own pending output (`conn.pendingBytes`, which also counts responses). A push
 * that would take pending output past `subscriberBuffer` is not written:
 * - policy `drop`: it is counted, and `{"event":"gap","dropped":N}` goes out before the next push
 *   that fits or as soon as the output has flushed, whichever comes first. The first drop asks the
 *   connection to say when what is pending has flushed (`notifyWhenFlushed`): the bound is usually
 *   below the socket's high-water mark, so the connection never congests and no drain would
 *   otherwise come to a subscriber that catches up after the last publish. `seq` still advances
 *   for dropped pushes, so a subscriber can also see exactly where the hole is.
 * - policy `disconnect`: the connection is destroyed (Redis's client-output-buffer-limit) with a
 *   logged reason, and the broker removes its subscriptions at once.
 * A push is always written when nothing is pending, so a single message larger than the bound
 * still reaches an idle subscriber; pending output never exceeds max(bound, one line) + responses.
 * Either way the publisher and the other subscribers never wait for this one.
 */
import { LogLimiter } from '../log.js';
import type { Connection } from '../transport/types.js';
import type { BrokerLimits, Publisher, RefusalCode, TokenBucket } from './limits.js';
import {
  type Change,
  DELIVERED,
  DROPPED,
  GONE,
  type Message,
  type Outcome,
  type PushEncoder,
  Subscriber,
  type Subscription,
} from './subscriber.js';

/** The part of a Connection a subscriber uses (tests pass a fake with controllable pendingBytes). */
export type PushSink = Pick<
  Connection,
  'id' | 'log' | 'write' | 'pendingBytes' | 'closed' | 'destroy' | 'notifyWhenFlushed'
> & {
  idleExempt: boolean;
};

/** Counters the broker reports in INFO; shared by every remote subscriber. */
export interface OutputCounters {
  dropped: number;
  slowDisconnected: number;
}

export class RemoteSubscriber extends Subscriber implements Publisher {
  readonly limited = true;
  /** The identity stamped on its messages: the connection id, or the user once authenticated. */
  from: number | string;
  fromJson: string;
  /** Pushes attempted (delivered or dropped) so far; the last push's `seq`. */
  seq = 0;
  /** Pushes dropped since the last gap line. */
  dropped = 0;
  #limiter: LogLimiter | undefined;

  constructor(
    readonly conn: PushSink,
    private readonly limits: BrokerLimits,
    private readonly counters: OutputCounters,
    readonly rate: TokenBucket | undefined,
    private readonly pushes: PushEncoder,
  ) {
    super();
    this.from = conn.id;
    this.fromJson = pushes.quoted(conn.id);
  }

  /** Restamps its messages: the authenticated user's name, or null for the connection id. */
  identify(user: string | null): void {
    this.from = user ?? this.conn.id;
    this.fromJson = this.pushes.quoted(this.from);
  }

  message(message: Message, subscription: Subscription): Outcome {
    if (this.conn.closed) return GONE;
    const seq = `${++this.seq}`;
    const head = message.head;
    const tail = message.tail;
    const pattern = subscription.patternJson;
    const end = this.pushes.end;
    if (!this.#admit(head.length + pattern.length + tail.length + seq.length + end.length)) {
      return this.#overflow();
    }
    this.conn.write(`${head}${pattern}${tail}${seq}${end}`);
    return DELIVERED;
  }

  change(change: Change): Outcome {
    if (this.conn.closed) return GONE;
    const seq = `${++this.seq}`;
    const head = change.head;
    const end = this.pushes.end;
    if (!this.#admit(head.length + seq.length + end.length)) return this.#overflow();
    this.conn.write(`${head}${seq}${end}`);
    return DELIVERED;
  }

  /**
   * The connection's output flushed or drained (the session's `drain()`): tell a subscriber that
   * lost pushes now, rather than waiting for a next push that may never come. Still over the bound
   * (responses written since), it asks to hear about the next flush instead.
   */
  drain(): void {
    if (this.dropped === 0 || this.conn.closed) return;
    if (this.conn.pendingBytes < this.limits.subscriberBuffer) this.#sendGap();
    else this.conn.notifyWhenFlushed();
  }

  override activeChanged(active: boolean): void {
    // Subscribers wait quietly by design: the idle timeout must not take them (TCP keepalive
    // finds dead peers instead).
    this.conn.idleExempt = active;
  }

  override lost(): void {
    if (this.conn.closed) return;
    this.conn.write(this.pushes.backendGap);
  }

  override revoked(channels: readonly string[], keys: readonly string[], reason: string): void {
    if (this.conn.closed) return;
    this.conn.log.info({ channels, keys, reason }, 'subscriptions revoked');
    this.conn.write(this.pushes.revoked(channels, keys, reason));
  }

  refused(code: RefusalCode, message: string): void {
    this.#limiter ??= new LogLimiter(this.conn.log);
    // Client mistakes are not server errors; a publish to a reserved channel is worth a warning.
    this.#limiter.log(code === 'NOPERM' ? 'warn' : 'info', { code, reason: message }, 'pubsub refused');
  }

  /** Whether a push of `length` fits; sends a pending gap line first when it does. */
  #admit(length: number): boolean {
    const pending = this.conn.pendingBytes;
    if (pending > 0 && pending + length > this.limits.subscriberBuffer) return false;
    if (this.dropped > 0) this.#sendGap();
    return true;
  }

  #overflow(): Outcome {
    const pending = this.conn.pendingBytes;
    if (this.limits.slowSubscriber === 'disconnect') {
      this.counters.slowDisconnected++;
      this.conn.log.warn(
        { pendingBytes: pending, subscriberBuffer: this.limits.subscriberBuffer },
        'slow subscriber disconnected: its pending output would pass --subscriber-buffer (policy disconnect)',
      );
      this.conn.destroy();
      return GONE;
    }
    if (this.dropped === 0) {
      this.#limiter ??= new LogLimiter(this.conn.log);
      this.#limiter.log(
        'info',
        { pendingBytes: pending, subscriberBuffer: this.limits.subscriberBuffer },
        'slow subscriber: dropping pushes until it catches up (policy drop)',
      );
      // Once per run of drops: the gap must reach it even if nothing is published after this.
      this.conn.notifyWhenFlushed();
    }
    this.dropped++;
    this.counters.dropped++;
    return DROPPED;
  }

  #sendGap(): void {
    const dropped = this.dropped;
    this.dropped = 0;
    this.conn.write(this.pushes.gap(dropped));
  }
}
