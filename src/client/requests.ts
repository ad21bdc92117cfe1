/**
 * The client's request side: every request from the call until it settles. Requests written to
 * the socket wait in `inflight` (the server answers in order, so a response settles the head);
 * requests waiting for a connection wait in `offline`. One timer serves every deadline: they grow
 * in send order, so only the oldest unsettled request of each queue can be due next. The socket,
 * reconnects and handshakes are core.ts's; this module knows nothing of them.
 */
import { type CaretError, type ClientErrorCode, clientError } from './errors.js';
import { RingQueue } from './queue.js';

/** One request from the call until it settles. */
export interface Pending {
  readonly action: string;
  readonly key: string | undefined;
  /** The encoded request, newline included, kept so it can be re-sent after a reconnect. */
  readonly line: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: CaretError) => void;
  /** performance.now() past which it times out; Infinity for none. */
  readonly deadline: number;
  /** Failed reconnect attempts it has waited through (checked against maxRetriesPerRequest). */
  retries: number;
  /** Settled by a timeout while its response is still due: the response is consumed and dropped. */
  settled: boolean;
  /** Sent by a handshake: never queued offline, never replayed (the handshake re-sends it). */
  readonly internal: boolean;
}

/** Why everything pending failed at once; each request gets its own CaretError naming its action. */
export interface Failure {
  code: ClientErrorCode;
  detail: string;
  cause?: unknown;
}

export function failWith(p: Pending, f: Failure): void {
  p.reject(clientError(f.code, p.action, p.key, f.detail, f.cause));
}

export function failureError(f: Failure): CaretError {
  return clientError(f.code, undefined, undefined, f.detail, f.cause);
}

export class PendingRequests {
  /** Requests written (or about to be written) to the socket, oldest first: responses pop the head. */
  readonly inflight = new RingQueue<Pending>(64);
  /** Requests waiting for a connection. */
  readonly offline = new RingQueue<Pending>(16);
  /**
   * How many requests at the head of `inflight` have timed out already. Deadlines grow in send
   * order, so timed-out requests are always a prefix; counting it keeps the sweep from re-walking them.
   */
  #settledHead = 0;
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Number.POSITIVE_INFINITY;
  readonly #sweepBound = (): void => this.#sweep();

  constructor(
    /** requestTimeout in ms; 0 = none. */
    private readonly timeoutMs: number,
    /** Called after each sweep (the core finishes a close() that was waiting for requests). */
    private readonly afterSweep: () => void,
  ) {}

  /** In-flight requests still waiting for their answer (timed-out ones excluded). */
  get unanswered(): number {
    return this.inflight.length - this.#settledHead;
  }

  /** A new request (in flight or offline): its deadline may be the next one due. */
  watch(pending: Pending): void {
    if (pending.deadline < this.#timerAt) this.#arm(pending.deadline);
  }

  /** The request a response answers: the head of `inflight` (maybe one that timed out already). */
  answered(): Pending {
    const pending = this.inflight.shift()!;
    if (pending.settled) this.#settledHead--;
    return pending;
  }

  /** Empties `inflight` (the connection is gone) and returns what was in it, oldest first. */
  clearInflight(): Pending[] {
    this.#settledHead = 0;
    return this.inflight.drain();
  }

  stopTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  #arm(deadline: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = deadline;
    this.#timer = setTimeout(this.#sweepBound, Math.max(1, Math.ceil(deadline - performance.now())));
    // The socket or the reconnect timer keeps the process alive while there is work; this timer alone must not.
    this.#timer.unref();
  }

  /**
   * A timed-out in-flight request stays in the FIFO (its response will still come and must be
   * consumed in order); a timed-out queued one just leaves.
   */
  #sweep(): void {
    this.#timer = null;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const timeout = this.timeoutMs;
    for (;;) {
      const p = this.inflight.at(this.#settledHead);
      if (p === undefined || p.deadline > now) break;
      p.settled = true;
      this.#settledHead++;
      p.reject(clientError('TIMEOUT', p.action, p.key, `no response after ${timeout} ms (requestTimeout)`));
    }
    for (;;) {
      const p = this.offline.peek();
      if (p === undefined || p.deadline > now) break;
      this.offline.shift();
      p.reject(
        clientError('TIMEOUT', p.action, p.key, `not connected within ${timeout} ms (requestTimeout)`),
      );
    }
    const next = Math.min(
      this.inflight.at(this.#settledHead)?.deadline ?? Number.POSITIVE_INFINITY,
      this.offline.peek()?.deadline ?? Number.POSITIVE_INFINITY,
    );
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next);
    this.afterSweep();
  }
}
