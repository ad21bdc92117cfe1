import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { CaretError, clientError } from './errors.js';
import { type ClientOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { type Failure, failureError, failWith, type Pending, PendingRequests } from './requests.js';

/**
 * The connection's life, as a state machine (after ioredis's `lib/Redis.ts`):
 *
 *   wait --connect()--> connecting --socket up, handshake done--> ready
 *     ^                  ^     |                                   |
 *     | (lazy, first     |     | attempt failed                    | socket lost
 *     |  attempt failed) |     v                                   v
 *     +----------- reconnecting (backoff timer) <------------------+
 *                        |
 *      retryStrategy -> null, or destroy()   close(): closing --all settled--> closed
 *                        +-------------------------------------------------------^
 *
 * 'closing' means close() was called: no new requests are accepted, and the client ends once every
 * accepted request has settled (answered, timed out or out of retries).
 */
export type ClientState = 'wait' | 'connecting' | 'ready' | 'reconnecting' | 'closing' | 'closed';

/** A server push: a line with an `event` field and no `ok` field (pub/sub, key observing). */
export interface PushMessage {
  event: string;
  [field: string]: unknown;
}

/** A request as it goes on the wire. */
export interface RawRequest {
  action: string;
  [field: string]: unknown;
}

export interface ClientEvents {
  /** A TCP connection is up (before the handshake; requests still wait for 'ready'). */
  connect: [];
  /** The client is connected and sending requests. */
  ready: [];
  /** The socket closed; a reconnect may follow. */
  close: [];
  /** A reconnect attempt is scheduled in `delay` ms. `attempt` counts from 1 since the last 'ready'. */
  reconnecting: [attempt: number, delay: number];
  /** The client reached 'closed' and will do nothing more. */
  end: [];
  /**
   * Socket errors, protocol violations, failed handshakes. Emitted only when someone listens: the
   * same failures also reject the affected requests, so an unobserved error must not crash the process.
   */
  error: [error: Error];
  /** A server push (issue 6 builds subscribe/observe on this). */
  push: [message: PushMessage];
}

/** Runs after each TCP connect and before 'ready' (authentication, resubscription). */
export type Handshake = (send: (request: RawRequest) => Promise<unknown>) => Promise<void> | void;

/**
 * The transport core: one socket, automatic pipelining, line framing, reconnects and handshakes.
 * The requests themselves (in flight, offline, their timeouts) are requests.ts's. It knows the wire
 * framing and nothing of the actions; `CaretClient` adds the typed methods on top.
 */
export class ClientCore extends EventEmitter<ClientEvents> {
  readonly options: ResolvedOptions;
  private _state: ClientState = 'wait';

  private socket: net.Socket | null = null;
  /** True between the socket's 'connect' and its 'close'. */
  private socketUp = false;
  private everReady = false;
  private closeRequested = false;
  private attempt = 0;
  private lastError: Error | undefined;

  /** The requests: in flight (answered in order) and waiting offline, with their timeouts. */
  private readonly requests: PendingRequests;
  private readonly inflight: PendingRequests['inflight'];
  private readonly offline: PendingRequests['offline'];

  /** Encoded requests not yet handed to the socket: coalesced into one write per tick. */
  private outBuf = '';
  /** How many requests at the tail of `inflight` are still in `outBuf` (never left the process). */
  private unsent = 0;
  private flushScheduled = false;
  private readonly flushBound = () => this.flush();
  private readBuf = '';

  private reconnectTimer: NodeJS.Timeout | null = null;
  /** Bounds the current connection attempt, and later the wait for the server's FIN after close(). */
  private connectTimer: NodeJS.Timeout | null = null;

  private readonly handshakes: Handshake[] = [];
  private handshaking = false;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private closeWaiters: (() => void)[] = [];

  constructor(urlOrOptions?: string | ClientOptions, options?: ClientOptions) {
    super();
    this.options = resolveOptions(urlOrOptions, options);
    this.requests = new PendingRequests(this.options.requestTimeout, () => {
      if (this.closeRequested) this.maybeFinishClose();
    });
    this.inflight = this.requests.inflight;
    this.offline = this.requests.offline;
    const { user, password } = this.options;
    if (user !== undefined && password !== undefined) {
      // First on every connection, so a reconnect re-authenticates before anything else is sent.
      this.addHandshake(async (send) => {
        await send({ action: 'AUTH', user, password });
      });
    }
    if (!this.options.lazyConnect) this.startConnecting();
  }

  get state(): ClientState {
    return this._state;
  }

  /** Requests sent and still awaiting their response (timed-out ones excluded). */
  get pendingCount(): number {
    return this.requests.unanswered;
  }

  /** Requests waiting for a connection. */
  get offlineCount(): number {
    return this.offline.length;
  }

  /**
   * Connect if not yet connecting (lazyConnect) and resolve once 'ready'. Rejects if the first
   * attempt fails (unless retryFirstConnect) or if the client closes first.
   */
  connect(): Promise<void> {
    if (this._state === 'ready') return Promise.resolve();
    if (this._state === 'closed' || this.closeRequested) {
      return Promise.reject(
        clientError('CONNECTION_CLOSED', undefined, undefined, 'connect() on a closed client'),
      );
    }
    const waiting = new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    if (this._state === 'wait') this.startConnecting();
    return waiting;
  }

  /**
   * Register a step that runs on every new connection before requests flow, e.g. re-subscribing
   * after a reconnect. Its `send` goes straight to the socket, ahead of the offline queue.
   */
  addHandshake(step: Handshake): void {
    this.handshakes.push(step);
  }

  /** Send a raw request (`{action, ...fields}`) and resolve with its `result`. */
  send<T = unknown>(request: RawRequest): Promise<T> {
    return this.request(request, false) as Promise<T>;
  }

  /**
   * Stop taking requests, let every accepted one settle, then end the connection. Resolves once
   * closed. Requests made after close() reject with CONNECTION_CLOSED.
   */
  close(): Promise<void> {
    if (this._state === 'closed') return Promise.resolve();
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    if (!this.closeRequested) {
      this.closeRequested = true;
      this._state = 'closing';
      this.flush();
      this.maybeFinishClose();
    }
    return done;
  }

  /** Close now: every pending request rejects with CONNECTION_CLOSED, the socket is destroyed. */
  destroy(): void {
    if (this._state === 'closed') return;
    this.closeRequested = true;
    const socket = this.socket;
    this.detachSocket();
    socket?.destroy();
    this.finishClosed({ code: 'CONNECTION_CLOSED', detail: 'destroy() was called' });
  }

  // ---------------------------------------------------------------- requests

  protected request(request: RawRequest, internal: boolean): Promise<unknown> {
    const action = typeof request.action === 'string' ? request.action : String(request.action);
    const key = typeof request.key === 'string' ? request.key : undefined;
    if (this.closeRequested && !internal) {
      return Promise.reject(clientError('CONNECTION_CLOSED', action, key, 'close() was called'));
    }
    let line: string;
    try {
      line = `${JSON.stringify(request)}\n`;
    } catch (cause) {
      return Promise.reject(clientError('INVALID_ARGUMENT', action, key, (cause as Error).message, cause));
    }
    return new Promise((resolve, reject) => {
      const timeout = this.options.requestTimeout;
      const pending: Pending = {
        action,
        key,
        line,
        resolve,
        reject,
        deadline: timeout > 0 ? performance.now() + timeout : Number.POSITIVE_INFINITY,
        retries: 0,
        settled: false,
        internal,
      };
      if (this.socketUp && (this._state === 'ready' || this._state === 'closing' || internal)) {
        this.write(pending);
      } else if (internal) {
        reject(clientError('CONNECTION_LOST', action, key, 'the handshake lost its connection'));
        return;
      } else if (this.offline.length >= this.options.maxOfflineQueue) {
        reject(
          clientError(
            'OFFLINE_QUEUE_FULL',
            action,
            key,
            `${this.offline.length} requests already wait for a connection (maxOfflineQueue)`,
          ),
        );
        return;
      } else {
        this.offline.push(pending);
        if (this._state === 'wait') this.startConnecting();
      }
      this.requests.watch(pending);
    });
  }

  private write(pending: Pending): void {
    this.inflight.push(pending);
    this.outBuf += pending.line;
    this.unsent++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // One write per tick for everything requested in it: 10 000 calls in a loop cost one syscall.
      process.nextTick(this.flushBound);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    // While the socket is over its high-water mark, keep coalescing here; 'drain' flushes again.
    if (
      this.outBuf === '' ||
      socket === null ||
      !this.socketUp ||
      socket.destroyed ||
      socket.writableNeedDrain
    ) {
      return;
    }
    const data = this.outBuf;
    this.outBuf = '';
    this.unsent = 0;
    socket.write(data);
  }

  // ---------------------------------------------------------------- responses

  private onData(chunk: string): void {
    let data = chunk;
    let nl = data.indexOf('\n');
    if (nl === -1) {
      this.readBuf += data;
      return;
    }
    if (this.readBuf !== '') {
      nl += this.readBuf.length;
      data = this.readBuf + data;
      this.readBuf = '';
    }
    const socket = this.socket;
    let start = 0;
    while (nl !== -1) {
      let end = nl;
      if (end > start && data.charCodeAt(end - 1) === 13) end--;
      if (end > start) this.onLine(data.slice(start, end));
      // A protocol violation resets the connection; the rest of this chunk belongs to it.
      if (socket === null || socket.destroyed) return;
      start = nl + 1;
      nl = data.indexOf('\n', start);
    }
    this.readBuf = start < data.length ? data.slice(start) : '';
  }

  private onLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.protocolViolation(`the server sent a line that is not JSON: ${line.slice(0, 100)}`);
      return;
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
      this.protocolViolation(`the server sent a JSON value that is not an object: ${line.slice(0, 100)}`);
      return;
    }
    const m = msg as { ok?: unknown; result?: unknown; error?: unknown; event?: unknown };
    if (m.ok === true || m.ok === false) {
      this.onResponse(m.ok, m);
    } else if (typeof m.event === 'string') {
      this.emit('push', msg as PushMessage);
      if (m.event === 'shutdown') {
        const message = (m as { message?: unknown }).message;
        this.serverRanNothingMore('SHUTTING_DOWN', { message });
      }
    } else {
      this.protocolViolation(`the server sent a line with neither "ok" nor "event": ${line.slice(0, 100)}`);
    }
  }

  private onResponse(ok: boolean, m: { result?: unknown; error?: unknown }): void {
    if (!ok) {
      const error = m.error as { code?: unknown; message?: unknown } | undefined;
      const code = error?.code;
      if (code === 'TOO_MANY_CONNECTIONS') {
        this.serverRanNothingMore(code, m.error as { message?: unknown });
        return;
      }
      if ((code === 'PROTECTED_MODE' || code === 'RATE_LIMITED') && this.inflight.length <= this.unsent) {
        // Turned away at accept (protected mode, a blocked address): the server's own words say why.
        const message = typeof error?.message === 'string' ? error.message : code;
        this.socket?.destroy(new CaretError(code, message));
        return;
      }
    }
    // Requests still in outBuf cannot have been answered: a response for one means we lost count.
    if (this.inflight.length <= this.unsent) {
      this.protocolViolation('the server sent a response with no request waiting for it');
      return;
    }
    const pending = this.requests.answered();
    if (pending.settled) {
      // Timed out earlier: its response was consumed only to keep the FIFO aligned.
    } else if (ok) {
      pending.resolve(m.result);
    } else {
      const e = (m.error ?? {}) as { code?: unknown; message?: unknown };
      const code = typeof e.code === 'string' ? e.code : 'INTERNAL';
      const message =
        typeof e.message === 'string' ? e.message : 'the server sent an error without a message';
      pending.reject(new CaretError(code, message, { action: pending.action, key: pending.key }));
    }
    if (this.closeRequested) this.maybeFinishClose();
  }

  /**
   * The server says it will run nothing more on this connection: it turned the connection away at
   * accept (TOO_MANY_CONNECTIONS), or it is shutting down (the `shutdown` push, sent after the
   * answer to the last request it ran). Every request still waiting for a
   * response did not run, so all of them are re-sent after reconnecting, like requests that never
   * left: a graceful server restart costs the caller latency, not errors.
   */
  private serverRanNothingMore(
    code: 'TOO_MANY_CONNECTIONS' | 'SHUTTING_DOWN',
    error: { message?: unknown },
  ): void {
    const message = typeof error.message === 'string' ? error.message : code;
    this.unsent = this.inflight.length;
    this.socket?.destroy(new CaretError(code, message));
  }

  private protocolViolation(detail: string): void {
    // The socket's 'error' handler reports it; 'close' then fails what was in flight.
    this.socket?.destroy(clientError('PROTOCOL_ERROR', undefined, undefined, detail));
  }

  // ---------------------------------------------------------------- connection lifecycle

  private startConnecting(): void {
    this._state = this.closeRequested ? 'closing' : 'connecting';
    this.reconnectTimer = null;
    const { host, port, connectTimeout, keepAlive, noDelay, tls: tlsOptions } = this.options;
    const socket =
      tlsOptions === null
        ? net.connect({ host, port, noDelay, keepAlive: keepAlive > 0, keepAliveInitialDelay: keepAlive })
        : tls.connect({
            host,
            port,
            // SNI takes a host name, never an IP address.
            ...(net.isIP(host) === 0 && { servername: host }),
            ...tlsOptions,
          });
    if (tlsOptions !== null) {
      socket.setNoDelay(noDelay);
      if (keepAlive > 0) socket.setKeepAlive(true, keepAlive);
    }
    this.socket = socket;
    socket.setEncoding('utf8');
    if (connectTimeout > 0) {
      this.connectTimer = setTimeout(() => {
        this.connectTimer = null;
        socket.destroy(
          clientError('CONNECT_TIMEOUT', undefined, undefined, `${host}:${port} after ${connectTimeout} ms`),
        );
      }, connectTimeout);
    }
    // With TLS the connection is usable once the handshake is done, not at TCP connect.
    socket.on(tlsOptions === null ? 'connect' : 'secureConnect', () => this.onConnect(socket));
    socket.on('data', (chunk: string) => {
      if (this.socket === socket) this.onData(chunk);
    });
    socket.on('drain', () => {
      if (this.socket === socket) this.flush();
    });
    socket.on('error', (err) => {
      if (this.socket !== socket) return;
      this.lastError = err;
      this.emitError(err);
    });
    socket.on('close', () => {
      if (this.socket === socket) this.onSocketClose();
    });
  }

  private async onConnect(socket: net.Socket): Promise<void> {
    if (this.socket !== socket) return;
    if (this.connectTimer !== null) {
      clearTimeout(this.connectTimer);
      this.connectTimer = null;
    }
    this.socketUp = true;
    this.lastError = undefined;
    this.emit('connect');
    if (this.handshakes.length > 0) {
      this.handshaking = true;
      try {
        const send = (r: RawRequest) => this.request(r, true);
        for (const step of this.handshakes) await step(send);
      } catch (err) {
        if (this.socket === socket) {
          // Kept so a first connection that fails its handshake (AUTH_FAILED) says why.
          this.lastError = err as Error;
          this.emitError(err as Error);
          socket.destroy();
        }
        return;
      } finally {
        this.handshaking = false;
      }
      if (this.socket !== socket) return;
    }
    this.attempt = 0;
    this.everReady = true;
    this._state = this.closeRequested ? 'closing' : 'ready';
    // Queued requests go first, in the order they were made.
    while (this.offline.length > 0) this.write(this.offline.shift()!);
    this.flush();
    this.emit('ready');
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.resolve();
    if (this.closeRequested) this.maybeFinishClose();
  }

  private detachSocket(): void {
    this.socket = null;
    this.socketUp = false;
    this.handshaking = false;
    this.readBuf = '';
    if (this.connectTimer !== null) {
      clearTimeout(this.connectTimer);
      this.connectTimer = null;
    }
  }

  private onSocketClose(): void {
    const wasUp = this.socketUp;
    this.detachSocket();
    this.requeueOrFailInflight();
    if (wasUp) this.emit('close');

    if (this._state === 'closed') return;
    if (!this.everReady && !this.options.retryFirstConnect) {
      // A wrong address should fail fast, not retry for minutes.
      const last = this.lastError;
      const { host, port } = this.options;
      const failure: Failure = {
        code:
          last instanceof CaretError && last.code === 'CONNECT_TIMEOUT'
            ? 'CONNECT_TIMEOUT'
            : 'CONNECT_FAILED',
        detail: `${host}:${port}: ${last?.message ?? 'the connection closed before it was ready'}`,
        cause: last,
      };
      if (this.options.lazyConnect && !this.closeRequested) {
        // Lazy clients connect on demand: fail what waited, and try again on the next request.
        this.failOffline(failure);
        this.failReadyWaiters(failureError(failure));
        this._state = 'wait';
      } else {
        this.finishClosed(failure);
      }
      return;
    }
    if (this.closeRequested && this.offline.length === 0) {
      this.finishClosed(CLOSED_BY_CALLER);
      return;
    }
    this.scheduleReconnect();
  }

  /**
   * The socket died. Requests still in outBuf never left the process: they wait for the next
   * connection. Requests written may have run: they fail with CONNECTION_LOST unless the caller
   * opted into replaying them.
   */
  private requeueOrFailInflight(): void {
    const unsentFrom = this.inflight.length - this.unsent;
    const replay = this.options.replayInFlight;
    const last = this.lastError;
    const lost: Failure =
      last instanceof CaretError && last.code === 'PROTOCOL_ERROR'
        ? { code: 'PROTOCOL_ERROR', detail: last.message, cause: last }
        : {
            code: 'CONNECTION_LOST',
            detail: last?.message ?? 'the server closed the connection',
            cause: last,
          };
    // Walk from the newest so that unshift rebuilds the original order at the offline queue's front.
    for (let i = this.inflight.length - 1; i >= 0; i--) {
      const p = this.inflight.at(i)!;
      if (p.settled) continue;
      if (p.internal) {
        failWith(p, lost);
      } else if (i >= unsentFrom || replay) {
        this.offline.unshift(p);
      } else {
        failWith(p, lost);
      }
    }
    this.requests.clearInflight();
    this.outBuf = '';
    this.unsent = 0;
  }

  private scheduleReconnect(): void {
    this.attempt++;
    // Each failed attempt counts against every request waiting for it (ioredis's maxRetriesPerRequest).
    const max = this.options.maxRetriesPerRequest;
    const n = this.offline.length;
    for (let i = 0; i < n; i++) {
      const p = this.offline.shift()!;
      p.retries++;
      if (p.retries > max) {
        p.reject(clientError('MAX_RETRIES', p.action, p.key, `gave up after ${max} reconnect attempts`));
      } else {
        this.offline.push(p);
      }
    }
    if (this.closeRequested && this.offline.length === 0) {
      this.finishClosed(CLOSED_BY_CALLER);
      return;
    }
    let delay: number | null;
    try {
      delay = this.options.retryStrategy(this.attempt);
    } catch (err) {
      this.emitError(err as Error);
      delay = null;
    }
    if (delay === null || typeof delay !== 'number' || !(delay >= 0)) {
      this.finishClosed({
        code: 'CONNECTION_CLOSED',
        detail: `retryStrategy gave up after ${this.attempt - 1} reconnect attempts`,
      });
      return;
    }
    this._state = this.closeRequested ? 'closing' : 'reconnecting';
    this.emit('reconnecting', this.attempt, delay);
    this.reconnectTimer = setTimeout(() => this.startConnecting(), delay);
  }

  /** Called whenever something settles after close(): end once nothing accepted is outstanding. */
  private maybeFinishClose(): void {
    if (this._state === 'closed' || this.pendingCount > 0 || this.offline.length > 0 || this.outBuf !== '')
      return;
    if (this.handshaking) return;
    const socket = this.socket;
    if (socket !== null && this.socketUp) {
      // Graceful: the server sees FIN after our last request, the 'close' event finishes the job.
      if (!socket.writableEnded) {
        socket.end();
        // A server that never closes its side must not hold close() forever.
        this.connectTimer = setTimeout(() => socket.destroy(), this.options.requestTimeout || 10_000);
        this.connectTimer.unref();
      }
      return;
    }
    if (socket !== null) {
      this.detachSocket();
      socket.destroy();
    }
    this.finishClosed(CLOSED_BY_CALLER);
  }

  /** Enter 'closed': everything still pending rejects with `error`, all timers stop. */
  private finishClosed(failure: Failure): void {
    this._state = 'closed';
    this.closeRequested = true;
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.requests.stopTimer();
    for (const p of this.requests.clearInflight()) if (!p.settled) failWith(p, failure);
    this.outBuf = '';
    this.unsent = 0;
    this.failOffline(failure);
    this.failReadyWaiters(failureError(failure));
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) w();
    this.emit('end');
  }

  private failOffline(failure: Failure): void {
    for (const p of this.offline.drain()) failWith(p, failure);
  }

  private failReadyWaiters(error: Error): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.reject(error);
  }

  private emitError(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}

const CLOSED_BY_CALLER: Failure = { code: 'CONNECTION_CLOSED', detail: 'close() was called' };
