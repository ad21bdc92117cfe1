/**
 * One connection's request pipeline, whatever the protocol: bytes in, requests run in order,
 * encoded responses out. A `RequestCodec` (protocol/ndjson.ts for JSON lines) frames and runs
 * each request and hands back its encoded response; the pipeline owns everything else.
 *
 * Ordering: responses leave in request order. While every result is synchronous (the in-memory
 * store) responses are appended straight to the output batch. Once the codec returns a promise,
 * that response gets a slot in `queue` and every later response queues behind it, so a fast
 * answer can never overtake a slow one.
 *
 * Batching: the responses to one incoming chunk go out in one `conn.write` (a pipelining client
 * costs one syscall per read, not one per request); a batch is cut early at FLUSH_BYTES so a
 * chunk of GETs for large values cannot pile up unbounded output.
 *
 * Backpressure: requests are pulled from the codec only while the connection is not congested,
 * the codec is not blocked (an AUTH being verified) and fewer than MAX_IN_FLIGHT responses wait on
 * promises. Unread input stays in the codec's framer (the transport stops reading while congested,
 * so that is bounded) and processing resumes on `drain()` or when a promise settles.
 *
 * Fairness: one connection's input is processed for at most `turnBudgetMs` per turn of the event
 * loop. A chunk whose requests take longer (a burst of PUBLISHes to thousands of subscribers) is
 * continued on the next turn (`setImmediate`), with reading from this client paused meanwhile.
 *
 * Shutdown: input that arrives after shutdown began is never run; once everything already read
 * is answered, the codec's shutdown notice is the last line written.
 */
import type { Connection, ConnectionHandler } from './types.js';

/** An encoded response (or push), or a promise of one. */
export type Encoded = string | Promise<string>;

/** The protocol side of a pipeline: framing, decoding, running and encoding one connection's requests. */
export interface RequestCodec {
  /** Bytes arrived from the client. */
  push(chunk: Buffer): void;
  /** Runs the next complete request and returns its encoded response; null when none is buffered. */
  next(): Encoded | null;
  /** The client sent FIN: runs a last request that lacks its terminator, if any. */
  finish(): Encoded | null;
  /** Whether unread input is buffered. */
  readonly hasInput: boolean;
  /** Nothing more may run until this clears (e.g. an AUTH being verified). */
  readonly blocked: boolean;
  /** Reading should stop until the codec has consumed what it holds (bounded pre-auth input). */
  readonly holdInput: boolean;
  /** The line written before the transport ends the connection at shutdown. */
  readonly shutdownNotice: string;
  /** The connection's output drained (the broker's gap notices). */
  drained(): void;
  /** The connection closed: release what the codec holds. */
  closed(): void;
  /** The response for a request whose promise rejected (the codec's own promises should not). */
  fault(err: unknown): string;
}

export interface PipelineLimits {
  /** Longest stretch of request processing per connection per event-loop turn, in ms. */
  readonly turnBudgetMs: number;
}

/** Responses waiting on promises before request processing pauses. */
const MAX_IN_FLIGHT = 1024;
/** Output batch size that triggers an early write (and a congestion check). */
const FLUSH_BYTES = 64 * 1024;

/** A response waiting on a promise. */
class Slot {
  text: string | undefined = undefined;
}

export class Pipeline implements ConnectionHandler {
  /** Output batch not yet written. */
  private out = '';
  /** Responses behind an unsettled promise, in order: ready text or a slot. */
  private queue: (string | Slot)[] = [];
  private inFlight = 0;
  private pumping = false;
  private ending = false;
  private endSent = false;
  private shuttingDown = false;
  private shutdownSent = false;
  /** Reading was paused because the codec asked to hold input. */
  private held = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Set while the rest of this turn's input waits for the next turn. */
  private continuation: NodeJS.Immediate | undefined = undefined;

  private readonly continueLater = (): void => {
    this.continuation = undefined;
    this.conn.resumeInput();
    this.pump();
  };

  constructor(
    private readonly conn: Connection,
    private readonly codec: RequestCodec,
    private readonly limits: PipelineLimits,
  ) {}

  data(chunk: Buffer): void {
    if (this.closed) return;
    // Input that arrives after shutdown began is never run; the shutdown notice tells the client so.
    if (this.shuttingDown) return;
    this.codec.push(chunk);
    if (this.codec.holdInput) {
      this.held = true;
      this.conn.pauseInput();
    }
    // Spent its budget this turn: the input waits for the continuation (reading is paused, so
    // only what was already on its way lands here).
    if (this.continuation !== undefined) return;
    this.pump();
  }

  drain(): void {
    this.codec.drained();
    this.pump();
  }

  end(): void {
    this.ending = true;
    this.pump();
  }

  shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.pump();
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    if (this.continuation !== undefined) clearImmediate(this.continuation);
    this.continuation = undefined;
    this.codec.closed();
    this.queue = [];
    this.out = '';
    this.wakeIdle();
  }

  /** Processes buffered requests until input runs out or output must wait. */
  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    const codec = this.codec;
    try {
      // The clock starts at the second request of a turn: a chunk of one request (a client that
      // waits for each answer) costs no clock read, and a single request is never split anyway.
      let deadline = Number.POSITIVE_INFINITY;
      let handled = 0;
      while (!this.conn.congested && this.inFlight < MAX_IN_FLIGHT && !codec.blocked) {
        const response = codec.next();
        if (response === null) break;
        if (handled === 1) deadline = performance.now() + this.limits.turnBudgetMs;
        this.respond(response);
        if (this.out.length >= FLUSH_BYTES) this.flush();
        if (++handled > 1 && performance.now() >= deadline) {
          this.continueNextTurn();
          break;
        }
      }
      if (this.ending && !codec.hasInput && !this.conn.congested && !codec.blocked) {
        // The client sent FIN: its last request may lack a terminator (`printf '...' | nc`).
        const last = codec.finish();
        if (last !== null) this.respond(last);
      }
      this.flush();
    } finally {
      this.pumping = false;
    }
    if (this.held && !codec.holdInput && !codec.blocked) {
      this.held = false;
      this.conn.resumeInput();
    }
    this.settle();
  }

  /** Budget spent with input left: stop reading from this client and go on after other work. */
  private continueNextTurn(): void {
    if (this.continuation !== undefined || !this.codec.hasInput) return;
    this.conn.pauseInput();
    this.continuation = setImmediate(this.continueLater);
  }

  private respond(response: Encoded): void {
    if (typeof response === 'string') {
      if (this.queue.length === 0) this.out += response;
      else this.queue.push(response);
      return;
    }
    const slot = new Slot();
    this.queue.push(slot);
    this.inFlight++;
    response.then(
      (text) => this.fill(slot, text),
      // The codec's promises do not reject; this is the net under it.
      (err: unknown) => this.fill(slot, this.codec.fault(err)),
    );
  }

  private fill(slot: Slot, text: string): void {
    if (this.closed) return;
    slot.text = text;
    this.inFlight--;
    let i = 0;
    for (; i < this.queue.length; i++) {
      const item = this.queue[i]!;
      if (typeof item === 'string') this.out += item;
      else if (item.text !== undefined) this.out += item.text;
      else break;
    }
    if (i > 0) this.queue = i === this.queue.length ? [] : this.queue.slice(i);
    this.flush();
    // Processing may have paused on MAX_IN_FLIGHT, and end/shutdown may be waiting for this.
    this.pump();
  }

  private flush(): void {
    if (this.out.length === 0) return;
    const out = this.out;
    this.out = '';
    this.conn.write(out);
  }

  private isIdle(): boolean {
    return this.closed || (this.queue.length === 0 && !this.codec.hasInput && this.out.length === 0);
  }

  /** Finishes end-of-input and shutdown once everything already read has been answered. */
  private settle(): void {
    if (!this.isIdle()) return;
    if (this.ending && !this.endSent) {
      this.endSent = true;
      this.conn.end();
    }
    if (this.shuttingDown && !this.shutdownSent && !this.closed) {
      // The last line before the transport ends the connection: every request the client has no
      // answer for was not run, so it can safely re-send it elsewhere or after a restart.
      this.shutdownSent = true;
      this.conn.write(this.codec.shutdownNotice);
    }
    this.wakeIdle();
  }

  private wakeIdle(): void {
    if (this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
