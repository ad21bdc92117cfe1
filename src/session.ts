/**
 * The JSON protocol on one connection: bytes -> lines -> decode -> dispatch -> encode -> bytes.
 *
 * Ordering: responses leave in request order. While every result is synchronous (the in-memory
 * store) responses are appended straight to the output batch. Once a handler returns a promise,
 * that response gets a slot in `queue` and every later response queues behind it, so a fast
 * answer can never overtake a slow one.
 *
 * Batching: the responses to one incoming chunk go out in one `conn.write` (a pipelining client
 * costs one syscall per read, not one per request); a batch is cut early at FLUSH_BYTES so a
 * chunk of GETs for large values cannot pile up unbounded output.
 *
 * Backpressure: lines are pulled from the framer only while the connection is not congested and
 * fewer than MAX_IN_FLIGHT responses wait on promises. Unread complete lines stay in the chunks
 * they arrived in (the transport stops reading while congested, so that is bounded) and
 * processing resumes on `drain()` or when a promise settles.
 *
 * Fairness: one connection's input is processed for at most PUMP_BUDGET_MS per turn of the event
 * loop. A chunk whose requests take longer (a burst of PUBLISHes to thousands of subscribers) is
 * continued on the next turn (`setImmediate`), with reading from this client paused meanwhile, so
 * that every other connection, timer and socket is served in between and the unread input stays
 * bounded.
 */
import { type Authority, openAuthority } from './auth/authority.js';
import { createStats, Dispatcher } from './commands/dispatch.js';
import { defaultCommandTable } from './commands/index.js';
import type {
  CommandContext,
  CommandTable,
  ConnectionCounts,
  ProtocolStats,
  ReloadSummary,
  ServerInfo,
} from './commands/table.js';
import { LogLimiter } from './log.js';
import { decode, RequestError } from './protocol/codec.js';
import { ERRORS } from './protocol/errors.js';
import { LIMITS } from './protocol/schema.js';
import type { PubSubBroker } from './pubsub/broker.js';
import type { Store } from './store/store.js';
import { LINE_TOO_LONG, LineFramer, type LineResult } from './transport/lines.js';
import type { Connection, ConnectionHandler, HandlerFactory } from './transport/types.js';
import { packageVersion } from './version.js';

/** What the composition root passes to `createProtocolHandler`. */
export interface ProtocolDeps {
  store: Store;
  /** Longest request line in bytes (config `maxLineBytes`); default 1 MiB. */
  maxLineBytes?: number;
  /** Deepest nesting of a request line, the request object counting as one (config `maxDepth`); default 64. */
  maxDepth?: number;
  /** Reported by INFO; defaults to package.json's version. */
  version?: string;
  /** Connection counters for INFO; pass `() => server.stats` (the transport's counters fit). */
  connections?: () => ConnectionCounts;
  /** Clock for uptime (ms); default `Date.now`. */
  now?: () => number;
  /** The command table; default: every built-in command. */
  table?: CommandTable;
  /**
   * Authentication and permissions, built over the same table; default: an open server (no users).
   * Build it with `createAuthority(table, ...)` so its permissions match the table.
   */
  auth?: (table: CommandTable) => Authority;
  /** The pub/sub broker; without it the pub/sub actions answer INTERNAL ("not enabled"). */
  broker?: PubSubBroker;
  /**
   * Longest stretch of request processing for one connection per turn of the event loop, in ms;
   * default PUMP_BUDGET_MS. Tests that check what one chunk does pass Infinity.
   */
  turnBudgetMs?: number;
  /** CONFIG RELOAD's implementation (the composition root re-reads the config file). */
  reload?: () => Promise<ReloadSummary>;
}

/** The handler factory, with the protocol counters INFO reports. */
export interface ProtocolHandlerFactory extends HandlerFactory {
  readonly stats: ProtocolStats;
  readonly server: ServerInfo;
  readonly auth: Authority;
}

/** Responses waiting on promises before line processing pauses. */
const MAX_IN_FLIGHT = 1024;
/** Output batch size that triggers an early write (and a congestion check). */
const FLUSH_BYTES = 64 * 1024;

/**
 * Longest stretch of request processing for one connection in one turn of the event loop. Checked
 * after each request, so a single request can run past it (the store and broker bound their own
 * big operations; docs/reliability.md).
 */
const PUMP_BUDGET_MS = 5;

/** A push (never a response): the server runs nothing more on this connection. */
const SHUTDOWN_PUSH = `${JSON.stringify({ event: 'shutdown', message: ERRORS.SHUTTING_DOWN })}\n`;

const NO_CONNECTIONS: ConnectionCounts = { connections: 0, connectionsTotal: 0, connectionsRejected: 0 };

export function createProtocolHandler(deps: ProtocolDeps): ProtocolHandlerFactory {
  const table = deps.table ?? defaultCommandTable();
  const stats = createStats(table);
  const now = deps.now ?? Date.now;
  const server: ServerInfo = {
    version: deps.version ?? packageVersion(),
    startedAt: now(),
    now,
    table,
    stats,
    connections: deps.connections ?? (() => NO_CONNECTIONS),
    ...(deps.reload && { reload: deps.reload }),
  };
  const dispatcher = new Dispatcher(table, stats);
  const maxLineBytes = deps.maxLineBytes ?? LIMITS.defaultMaxLineBytes;
  const maxDepth = deps.maxDepth ?? LIMITS.defaultMaxDepth;
  const turnBudgetMs = deps.turnBudgetMs ?? PUMP_BUDGET_MS;
  const auth = deps.auth?.(table) ?? openAuthority(table, maxLineBytes);

  const factory = (conn: Connection): ConnectionHandler => {
    const refusal = auth.admission(conn.remoteAddress);
    if (refusal !== null) {
      conn.end(refusal);
      return REFUSED;
    }
    return new Session(
      conn,
      { store: deps.store, server, conn, log: conn.log, auth: auth.attach(conn), broker: deps.broker },
      dispatcher,
      { maxLineBytes, maxDepth, turnBudgetMs },
    );
  };
  return Object.assign(factory, { stats, server, auth });
}

/** The handler of a connection turned away at accept (its one line is already on its way). */
const REFUSED: ConnectionHandler = { data() {}, close() {} };

interface SessionLimits {
  turnBudgetMs: number;
  maxLineBytes: number;
  maxDepth: number;
}

function tooLongMessage(limit: number, authenticated: boolean): string {
  return authenticated
    ? `line longer than ${limit} bytes was discarded (raise --max-line-bytes or split the value)`
    : `line longer than ${limit} bytes was discarded: before AUTH the limit is --pre-auth-max-line-bytes`;
}

/** A response waiting on a promise. */
class Slot {
  text: string | undefined = undefined;
}

class Session implements ConnectionHandler {
  private readonly framer: LineFramer;
  /** Output batch not yet written. */
  private out = '';
  /** Responses behind an unsettled promise, in order: ready text or a slot. */
  private queue: (string | Slot)[] = [];
  private inFlight = 0;
  private pumping = false;
  private ending = false;
  private endSent = false;
  private shuttingDown = false;
  /** Reading was paused because an unauthenticated client queued too much behind its AUTH. */
  private heldForAuth = false;
  private shutdownSent = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private limiter: LogLimiter | undefined;
  private lineLimit: number;
  /** Set while processing is to continue on the next turn of the event loop (budget spent). */
  private continuation: NodeJS.Immediate | undefined = undefined;
  private readonly continueLater = (): void => {
    this.continuation = undefined;
    this.conn.resumeInput();
    this.pump();
  };

  constructor(
    private readonly conn: Connection,
    private readonly ctx: CommandContext,
    private readonly dispatcher: Dispatcher,
    private readonly limits: SessionLimits,
  ) {
    this.lineLimit = ctx.auth.lineLimit;
    this.framer = new LineFramer(this.lineLimit);
  }

  data(chunk: Buffer): void {
    if (this.closed) return;
    // Input that arrives after shutdown began is never run; the shutdown push tells the client so.
    if (this.shuttingDown) return;
    this.framer.push(chunk);
    // Before AUTH, unread input is bounded too (it piles up only while an AUTH is being verified):
    // an unauthenticated client must not make the server hold more than a few small lines. Past
    // that, reading stops (TCP backpressure, as while congested) until the AUTH is answered; the
    // lines already read then run, allowed or NOAUTH, and reading resumes.
    if (!this.ctx.auth.authenticated && this.framer.bufferedBytes > 2 * this.lineLimit) {
      this.heldForAuth = true;
      this.conn.pauseInput();
    }
    // Spent its budget this turn: the input waits for the continuation (reading is paused, so
    // only what was already on its way lands here).
    if (this.continuation !== undefined) return;
    this.pump();
  }

  drain(): void {
    // A subscriber that lost pushes while congested hears about it now (a gap push).
    this.ctx.broker?.connectionDrained(this.conn);
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
    // Every subscription and observation of this connection goes at once.
    this.ctx.broker?.connectionClosed(this.conn);
    this.ctx.auth.dispose();
    this.framer.reset();
    this.queue = [];
    this.out = '';
    this.limiter?.flush();
    this.wakeIdle();
  }

  /** Processes buffered lines until input runs out or output must wait. */
  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    const auth = this.ctx.auth;
    if (auth.lineLimit !== this.lineLimit) {
      // AUTH succeeded (or a reload took it away): the framer's limit follows. Only a limit, so
      // raising or lowering it mid-stream never corrupts a line already being carried.
      this.lineLimit = auth.lineLimit;
      this.framer.maxLineBytes = auth.lineLimit;
    }
    try {
      // The clock starts at the second request of a turn: a chunk of one request (a client that
      // waits for each answer) costs no clock read, and a single request is never split anyway.
      let deadline = Number.POSITIVE_INFINITY;
      let handled = 0;
      // While an AUTH is being verified nothing after it runs: pipelined requests wait for its outcome.
      while (!this.conn.congested && this.inFlight < MAX_IN_FLIGHT && !auth.busy) {
        const line = this.framer.next();
        if (line === null) break;
        if (handled === 1) deadline = performance.now() + this.limits.turnBudgetMs;
        this.handle(line);
        if (this.out.length >= FLUSH_BYTES) this.flush();
        if (++handled > 1 && performance.now() >= deadline) {
          this.continueNextTurn();
          break;
        }
      }
      if (this.ending && !this.framer.hasInput && !this.conn.congested && !auth.busy) {
        // The client sent FIN: its last line may lack a newline (`printf '...' | nc`).
        const last = this.framer.finish();
        if (last !== null) this.handle(last);
      }
      this.flush();
    } finally {
      this.pumping = false;
    }
    if (this.heldForAuth && !auth.busy && this.framer.bufferedBytes <= this.lineLimit) {
      this.heldForAuth = false;
      this.conn.resumeInput();
    }
    this.settle();
  }

  /** Budget spent with input left: stop reading from this client and go on after other work. */
  private continueNextTurn(): void {
    if (this.continuation !== undefined || !this.framer.hasInput) return;
    this.conn.pauseInput();
    this.continuation = setImmediate(this.continueLater);
  }

  private handle(line: Exclude<LineResult, null>): void {
    if (line === LINE_TOO_LONG) {
      this.badRequest('LINE_TOO_LONG', undefined);
      this.respond(
        this.dispatcher.error(
          undefined,
          'LINE_TOO_LONG',
          tooLongMessage(this.lineLimit, this.ctx.auth.authenticated),
        ),
      );
      return;
    }
    const req = decode(line, this.limits.maxDepth);
    if (req instanceof RequestError) {
      this.badRequest(req.code, req.id);
      this.respond(this.dispatcher.reject(req));
      return;
    }
    this.respond(this.dispatcher.run(req, this.ctx));
  }

  private respond(response: string | Promise<string>): void {
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
      // The dispatcher's promises do not reject; this is the net under it.
      (err: unknown) => {
        this.ctx.log.error({ err }, 'response failed');
        this.fill(slot, this.dispatcher.error(undefined, 'INTERNAL', ERRORS.INTERNAL));
      },
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
    return this.closed || (this.queue.length === 0 && !this.framer.hasInput && this.out.length === 0);
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
      this.conn.write(SHUTDOWN_PUSH);
    }
    this.wakeIdle();
  }

  private wakeIdle(): void {
    if (this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /** One sampled debug line per bad request: a client sending garbage cannot flood the log. */
  private badRequest(code: string, id: string | number | undefined): void {
    if (!this.ctx.log.isLevelEnabled('debug')) return;
    this.limiter ??= new LogLimiter(this.ctx.log);
    this.limiter.log('debug', { code, id }, 'bad request');
  }
}
