import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { LogLimiter } from '../log.js';
import type { AddressLimit } from './address-limit.js';
import type { Connection, ConnectionHandler, HandlerFactory } from './types.js';

export interface TransportOptions {
  host: string;
  port: number;
  handler: HandlerFactory;
  logger: Logger;
  /** Seconds without traffic before a connection is closed; 0 = never. */
  idleTimeout: number;
  maxConnections: number;
  /** Seconds `close()` lets connections finish before destroying them. */
  shutdownGrace: number;
  /** Pending output in bytes above which the transport stops reading from that client. */
  highWaterMark?: number;
  /** The one line a connection over the limit receives before it is closed. */
  rejectMessage?: string | Uint8Array;
  /** Connections per client address, shared with the server's other listeners. */
  perAddress?: AddressLimit;
  /** The one line a connection over `perAddress`'s limit receives before it is closed. */
  perAddressRejectMessage?: string | Uint8Array;
  /**
   * Serve TLS: certificate, key and, for mutual TLS, `ca` + `requestCert` + `rejectUnauthorized`.
   * Connections reach the handler only after the handshake succeeded.
   */
  tls?: tls.TlsOptions;
}

/** A TLS handshake must finish within this long (the default, 120 s, lets idle sockets pile up). */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface TransportStats {
  /** Open connections (rejected ones never count). */
  connections: number;
  connectionsTotal: number;
  connectionsRejected: number;
  bytesIn: number;
  /** Bytes queued for clients (including any still pending in user space). */
  bytesOut: number;
}

export interface ShutdownSummary {
  /** Connections open when shutdown began. */
  connections: number;
  /** Of those, closed cleanly within the grace period. */
  graceful: number;
  /** Destroyed when the grace period ran out. */
  destroyed: number;
  durationMs: number;
}

export interface ListenAddress {
  host: string;
  port: number;
}

const DEFAULT_HIGH_WATER_MARK = 64 * 1024;
/**
 * After we end a connection we keep reading (and discarding) until the peer's FIN: closing a
 * socket with unread input makes the kernel send RST and throw away our final bytes. A peer that
 * neither reads nor closes for this long is gone.
 */
const LINGER_MS = 10_000;
/** At shutdown, a flushed connection whose client sent nothing for this long is closed. */
const SHUTDOWN_QUIET_MS = 200;
/** A rejected client gets this long to read its error line and close. */
const REJECT_LINGER_MS = 2_000;

/** Unique for the life of the process, across transports. */
let nextConnectionId = 1;

const seconds = (s: number): number => (s > 0 ? Math.max(1, Math.round(s * 1000)) : 0);

function destroySocket(this: net.Socket): void {
  this.destroy();
}

function ignoreError(): void {
  // A rejected client's faults need no report: the socket is being dropped anyway.
}

/**
 * Node's Readable schedules a `process.nextTick(maybeReadMore_)` after every chunk it pushes. For a
 * socket in flowing mode that tick does nothing (the handle keeps reading on its own; pause and
 * resume start and stop it directly), but a tick per read costs a `processTicksAndRejections` pass,
 * which on Node 20 also allocates a Map in `processPromiseRejections` (nodejs/node#62919): a
 * third of what the server allocated per request at pipeline 1 (sampling heap profile,
 * docs/benchmarks.md). Marking the stream as already reading more skips the tick. `_readableState`
 * is not public API, hence the feature check: where it is missing or different, nothing changes.
 */
function skipReadMoreTicks(socket: net.Socket): void {
  const state = (socket as { _readableState?: { readingMore?: unknown } })._readableState;
  if (state !== undefined && typeof state.readingMore === 'boolean') state.readingMore = true;
}

/**
 * Output is sent once per turn of the event loop, as Redis sends replies before it next waits for
 * events: a connection's writes during a turn (a batch of responses, pub/sub pushes) are held and
 * go out in one socket write after the loop has handled every readable socket (`setImmediate` runs
 * right after the poll phase). Writing while still reading meant one wake-up of the peer per
 * write; at the end of the turn the peer is woken once and finds everything. Measured with the
 * macro benchmark (docs/benchmarks.md, row 13): ~15% more requests per second at pipeline 16,
 * with half the kernel time per request. Output of a high-water mark or more is written at once, so memory
 * and backpressure stay bounded as before.
 */
class TurnFlusher {
  #waiting: SocketConnection[] = [];
  #scheduled = false;

  add(conn: SocketConnection): void {
    this.#waiting.push(conn);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#run);
    }
  }

  readonly #run = (): void => {
    this.#scheduled = false;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const conn of waiting) conn.flushTurn();
  };
}

/** One accepted socket, as the handler sees it. Listener fields are bound once per connection. */
class SocketConnection implements Connection {
  readonly id = nextConnectionId++;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly log: Logger;
  idleExempt = false;
  /** The per-address slot this connection holds (AddressLimit), released when it closes. */
  addressKey: string | undefined = undefined;

  readonly #socket: net.Socket;
  readonly #released: (conn: SocketConnection) => void;
  #handler: ConnectionHandler | undefined;
  #ending = false;
  #congested = false;
  #inputPaused = false;
  /** An empty write is queued whose callback will call `handler.drain()`. */
  #flushQueued = false;
  /** `notifyWhenFlushed()` was called again while one was queued. */
  #flushAgain = false;
  #closed: Promise<void> | undefined;
  readonly #flusher: TurnFlusher;
  /** Output of this turn not yet handed to the socket: strings joined, or parts when bytes came too. */
  #text = '';
  #parts: (string | Uint8Array)[] | null = null;
  #held = 0;
  /** In the flusher's list for this turn. */
  #queued = false;

  constructor(
    socket: net.Socket,
    logger: Logger,
    released: (conn: SocketConnection) => void,
    flusher: TurnFlusher,
  ) {
    this.#socket = socket;
    this.#released = released;
    this.#flusher = flusher;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.log = logger.child({ conn: this.id });
  }

  /** Wire the socket to the handler; returns false (connection destroyed) if the factory threw. */
  start(factory: HandlerFactory, idleTimeoutMs: number): boolean {
    const socket = this.#socket;
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    try {
      this.#handler = factory(this);
    } catch (err) {
      this.log.error({ err }, 'handler factory failed; closing connection');
      this.destroy();
      return false;
    }
    socket.on('data', this.#onData);
    skipReadMoreTicks(socket);
    socket.on('end', this.#onEnd);
    socket.on('drain', this.#onDrain);
    socket.on('timeout', this.#onTimeout);
    if (idleTimeoutMs > 0) socket.setTimeout(idleTimeoutMs);
    return true;
  }

  get pendingBytes(): number {
    // Output held for the end of the turn waits for the client only if the socket is already
    // backed up; a client that keeps up takes it at the end of the turn (as it would have taken it
    // at once when every write went straight to the socket).
    const socketBytes = this.#socket.writableLength;
    return socketBytes === 0 ? 0 : socketBytes + this.#held;
  }

  get congested(): boolean {
    return this.#congested;
  }

  get closed(): boolean {
    return this.#ending;
  }

  get bytesIn(): number {
    return this.#socket.bytesRead;
  }

  get bytesOut(): number {
    return this.#socket.bytesWritten;
  }

  write(data: string | Uint8Array): void {
    if (this.#ending || !this.#socket.writable) return;
    if (typeof data === 'string' && this.#parts === null) {
      this.#text += data;
    } else {
      this.#parts ??= this.#text === '' ? [] : [this.#text];
      this.#text = '';
      this.#parts.push(data);
    }
    this.#held += data.length;
    if (this.#held >= this.#socket.writableHighWaterMark) {
      this.#sendHeld();
    } else if (!this.#queued) {
      this.#queued = true;
      this.#flusher.add(this);
    }
  }

  /** The end of the turn: what this turn wrote goes to the socket (see TurnFlusher). */
  flushTurn(): void {
    this.#queued = false;
    if (!this.#ending) this.#sendHeld();
  }

  /** Hands held output to the socket, in one write (several parts go out corked, as one writev). */
  #sendHeld(): void {
    if (this.#held === 0) return;
    const socket = this.#socket;
    const parts = this.#parts;
    let below: boolean;
    if (this.#text !== '' && parts !== null) parts.push(this.#text);
    if (parts === null || parts.length === 1) {
      below = socket.write(parts === null ? this.#text : parts[0]!);
    } else {
      socket.cork();
      for (const part of parts) socket.write(part);
      socket.uncork();
      // Corked, write() reports what was buffered before uncork() wrote it: ask afterwards.
      below = socket.writableLength < socket.writableHighWaterMark;
    }
    this.#text = '';
    this.#parts = null;
    this.#held = 0;
    if (!below && !this.#congested) {
      this.#congested = true;
      socket.pause();
    }
  }

  #dropHeld(): void {
    this.#text = '';
    this.#parts = null;
    this.#held = 0;
  }

  pauseInput(): void {
    if (this.#inputPaused || this.#ending) return;
    this.#inputPaused = true;
    this.#socket.pause();
  }

  resumeInput(): void {
    if (!this.#inputPaused) return;
    this.#inputPaused = false;
    if (!this.#congested && !this.#ending) this.#socket.resume();
  }

  /**
   * Write callbacks run in order, each once the writes before it were handed to the kernel, so an
   * empty write's callback is a flush notification (net.Socket and TLSSocket alike: TLSWrap passes
   * an empty write through to the TCP socket once its encrypted output is out). Node has no
   * 'flushed' event: 'drain' fires only after write() returned false.
   */
  notifyWhenFlushed(): void {
    if (this.#ending || !this.#socket.writable) return;
    // What is held for the end of the turn is part of "everything written so far".
    this.#sendHeld();
    if (this.#flushQueued) {
      this.#flushAgain = true;
      return;
    }
    this.#flushQueued = true;
    this.#socket.write('', this.#onFlushed);
  }

  end(finalData?: string | Uint8Array): void {
    if (this.#ending) return;
    const socket = this.#socket;
    if (!socket.writable) {
      this.#ending = true;
      this.#dropHeld();
      return;
    }
    this.#sendHeld();
    this.#ending = true;
    if (finalData === undefined) socket.end();
    else socket.end(finalData);
    // Read on (input is dropped from now on) so the peer's FIN arrives and the socket closes.
    socket.resume();
    socket.setTimeout(LINGER_MS);
  }

  destroy(): void {
    this.#ending = true;
    this.#dropHeld();
    this.#socket.destroy();
  }

  /** Graceful shutdown: let the handler finish, then end; resolves when the socket has closed. */
  shutdown(): Promise<void> {
    this.#closed ??= new Promise((resolve) => {
      if (this.#socket.closed) resolve();
      else this.#socket.once('close', () => resolve());
    });
    let pending: void | Promise<void> | undefined;
    try {
      pending = this.#handler?.shutdown?.();
    } catch (err) {
      this.log.error({ err }, 'handler shutdown failed');
    }
    if (pending) {
      pending.then(
        () => this.#closeWhenFlushed(),
        (err: unknown) => {
          this.log.error({ err }, 'handler shutdown failed');
          this.#closeWhenFlushed();
        },
      );
    } else {
      this.#closeWhenFlushed();
    }
    return this.#closed;
  }

  /**
   * Shutdown's end: once everything written (the shutdown notice included) has left for the
   * kernel ('finish'), the socket is closed after SHUTDOWN_QUIET_MS without input instead of the
   * full linger for the peer's FIN, so an idle client that never hangs up cannot hold the process
   * for the grace period. Not at once: closing with unread input makes the kernel answer with RST,
   * and a peer receiving RST may drop replies it has not read yet; a client still sending keeps
   * resetting the timer (the grace bounds it), as a client that does not read never finishes.
   */
  #closeWhenFlushed(): void {
    this.end();
    const socket = this.#socket;
    if (socket.destroyed) return;
    if (socket.writableFinished) socket.setTimeout(SHUTDOWN_QUIET_MS);
    else socket.once('finish', () => socket.setTimeout(SHUTDOWN_QUIET_MS));
  }

  #fault(err: unknown, during: string): void {
    // The handler is our code: its failure is a server error, but it costs only this connection.
    this.log.error({ err, during }, 'handler fault; closing connection');
    this.destroy();
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#ending) return;
    try {
      this.#handler!.data(chunk);
    } catch (err) {
      this.#fault(err, 'data');
    }
  };

  readonly #onEnd = (): void => {
    if (this.#ending) return;
    this.log.debug('client half-closed');
    const handler = this.#handler!;
    if (!handler.end) {
      this.end();
      return;
    }
    try {
      handler.end();
    } catch (err) {
      this.#fault(err, 'end');
    }
  };

  readonly #onDrain = (): void => {
    if (!this.#congested) return;
    this.#congested = false;
    if (!this.#inputPaused) this.#socket.resume();
    if (!this.#ending) this.#callDrain();
  };

  readonly #onFlushed = (err?: Error | null): void => {
    this.#flushQueued = false;
    // An error means the socket was destroyed (reset, EPIPE): 'close' follows and nothing flushed.
    if (err || this.#ending) return;
    if (this.#flushAgain) {
      this.#flushAgain = false;
      // A request that came after further writes waits for those too.
      if (this.#socket.writableLength > 0) {
        this.#flushQueued = true;
        this.#socket.write('', this.#onFlushed);
        return;
      }
    }
    this.#callDrain();
  };

  #callDrain(): void {
    try {
      this.#handler!.drain?.();
    } catch (err) {
      this.#fault(err, 'drain');
    }
  }

  readonly #onTimeout = (): void => {
    if (this.#ending) {
      this.log.debug('peer neither read nor closed after end; destroying');
      this.destroy();
      return;
    }
    if (this.idleExempt) return;
    this.log.debug('idle timeout');
    // Output stuck in the buffer means the client is not reading either: no point waiting for it.
    if (this.#socket.writableLength > 0) this.destroy();
    else this.end();
  };

  readonly #onError = (err: NodeJS.ErrnoException): void => {
    // ECONNRESET, EPIPE, ETIMEDOUT...: the client's doing or the network's, never a server error.
    this.log.debug({ code: err.code, message: err.message }, 'socket error');
  };

  readonly #onClose = (): void => {
    this.#ending = true;
    this.#dropHeld();
    this.#released(this);
    this.log.debug({ bytesIn: this.bytesIn, bytesOut: this.bytesOut }, 'connection closed');
    try {
      this.#handler?.close();
    } catch (err) {
      this.log.error({ err }, 'handler close failed');
    }
  };
}

/**
 * The TCP listener: accepts connections, hands each to a handler from the factory, and owns
 * their lifecycle (backpressure, idle timeout, connection limit, graceful shutdown).
 * It knows nothing of what the bytes mean.
 */
export class Transport {
  readonly #options: TransportOptions;
  readonly #log: Logger;
  readonly #server: net.Server;
  readonly #flusher = new TurnFlusher();
  readonly #connections = new Set<SocketConnection>();
  readonly #rejected = new Set<net.Socket>();
  /** TLS only: every TCP socket under the listener, handshaking or not. */
  readonly #raw = new Set<net.Socket>();
  readonly #rejectLog: LogLimiter;
  readonly #idleTimeoutMs: number;
  readonly #rejectMessage: string | Uint8Array;
  #closing: Promise<ShutdownSummary> | undefined;
  // Totals of connections already closed; live ones are added when stats are read.
  #connectionsTotal = 0;
  #connectionsRejected = 0;
  #bytesIn = 0;
  #bytesOut = 0;

  constructor(options: TransportOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#idleTimeoutMs = seconds(options.idleTimeout);
    this.#rejectMessage = options.rejectMessage ?? 'too many connections\n';
    this.#rejectLog = new LogLimiter(this.#log, { burst: 5, perSecond: 1 });
    const socketOptions: net.ServerOpts = {
      // The handler decides when to end after the client's FIN (it may still owe responses).
      allowHalfOpen: true,
      noDelay: true,
      // Idle-exempt connections (subscribers) may stay silent for hours: keepalive finds dead peers.
      keepAlive: true,
      keepAliveInitialDelay: 60_000,
      highWaterMark: options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK,
    };
    if (options.tls) {
      const server = tls.createServer(
        { ...socketOptions, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS, ...options.tls },
        this.#onConnection,
      );
      // A failed handshake (no client certificate, wrong CA, plain text on a TLS port) is the
      // client's doing: logged, sampled, never a server error.
      server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
        this.#rejectLog.log(
          'info',
          { remoteAddress: socket.remoteAddress, code: err.code, reason: err.message },
          'TLS handshake failed',
        );
        socket.destroy();
      });
      // Sockets still in their handshake are no connection yet, but `server.close()` waits for them.
      server.on('connection', (raw: net.Socket) => {
        this.#raw.add(raw);
        raw.once('close', () => this.#raw.delete(raw));
      });
      this.#server = server;
    } else {
      this.#server = net.createServer(socketOptions, this.#onConnection);
    }
  }

  /** Whether this listener speaks TLS. */
  get tls(): boolean {
    return this.#server instanceof tls.Server;
  }

  /** New certificates for connections accepted from now on (reload); live ones keep theirs. */
  setSecureContext(options: tls.SecureContextOptions): void {
    if (!(this.#server instanceof tls.Server)) throw new Error('setSecureContext on a plain listener');
    this.#server.setSecureContext(options);
  }

  listen(): Promise<ListenAddress> {
    const server = this.#server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen({ host: this.#options.host, port: this.#options.port }, () => {
        server.off('error', onError);
        // Later listener errors (EMFILE on accept...) are server faults, not crashes.
        server.on('error', (err) => this.#log.error({ err }, 'listener error'));
        resolve(this.address!);
      });
    });
  }

  /** Where the server listens, or null before `listen()` resolves and after `close()`. */
  get address(): ListenAddress | null {
    const a = this.#server.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
  }

  get stats(): TransportStats {
    let bytesIn = this.#bytesIn;
    let bytesOut = this.#bytesOut;
    for (const conn of this.#connections) {
      bytesIn += conn.bytesIn;
      bytesOut += conn.bytesOut;
    }
    return {
      connections: this.#connections.size,
      connectionsTotal: this.#connectionsTotal,
      connectionsRejected: this.#connectionsRejected,
      bytesIn,
      bytesOut,
    };
  }

  /**
   * Graceful shutdown: stop accepting, let each handler finish (`shutdown()`), end each connection
   * once its output flushed, destroy what remains after the grace period. Idempotent.
   */
  close(): Promise<ShutdownSummary> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<ShutdownSummary> {
    const started = performance.now();
    const server = this.#server;
    const stopped = new Promise<void>((resolve) => {
      // Resolves once every socket the server accepted has closed.
      if (server.listening) server.close(() => resolve());
      else resolve();
    });
    for (const socket of this.#rejected) socket.destroy();

    const open = [...this.#connections];
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, seconds(this.#options.shutdownGrace));
    });
    await Promise.race([Promise.all(open.map((conn) => conn.shutdown())), graceOver]);
    clearTimeout(timer);

    const destroyed = this.#connections.size;
    for (const conn of this.#connections) conn.destroy();
    // TLS sockets still in their handshake sent no request; after the grace period they go too.
    for (const raw of this.#raw) raw.destroy();
    await stopped;
    return {
      connections: open.length,
      graceful: open.length - destroyed,
      destroyed,
      durationMs: Math.round(performance.now() - started),
    };
  }

  readonly #onConnection = (socket: net.Socket): void => {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    if (this.#connections.size >= this.#options.maxConnections) {
      this.#reject(socket, this.#rejectMessage, 'connection limit reached; rejecting connection');
      return;
    }
    const addressKey = this.#options.perAddress?.acquire(socket.remoteAddress);
    if (addressKey === false) {
      this.#reject(
        socket,
        this.#options.perAddressRejectMessage ?? this.#rejectMessage,
        'per-address connection limit reached; rejecting connection',
      );
      return;
    }
    const conn = new SocketConnection(socket, this.#log, this.#release, this.#flusher);
    conn.addressKey = addressKey;
    this.#connections.add(conn);
    this.#connectionsTotal++;
    conn.log.debug({ remoteAddress: conn.remoteAddress, remotePort: conn.remotePort }, 'connection opened');
    conn.start(this.#options.handler, this.#idleTimeoutMs);
  };

  readonly #release = (conn: SocketConnection): void => {
    this.#connections.delete(conn);
    if (conn.addressKey !== undefined) this.#options.perAddress?.release(conn.addressKey);
    this.#bytesIn += conn.bytesIn;
    this.#bytesOut += conn.bytesOut;
  };

  #reject(socket: net.Socket, message: string | Uint8Array, why: string): void {
    this.#connectionsRejected++;
    this.#rejectLog.log('warn', { remoteAddress: socket.remoteAddress }, why);
    this.#rejected.add(socket);
    socket.on('error', ignoreError);
    socket.once('close', () => this.#rejected.delete(socket));
    // Drain the client's input so closing cannot turn into an RST that eats the error line.
    socket.resume();
    socket.setTimeout(REJECT_LINGER_MS, destroySocket);
    socket.end(message);
  }
}
