import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { LogLimiter } from '../log.js';
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

/** One accepted socket, as the handler sees it. Listener fields are bound once per connection. */
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

class SocketConnection implements Connection {
  readonly id = nextConnectionId++;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly log: Logger;
  idleExempt = false;

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

  constructor(socket: net.Socket, logger: Logger, released: (conn: SocketConnection) => void) {
    this.#socket = socket;
    this.#released = released;
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
    return this.#socket.writableLength;
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
    if (!this.#socket.write(data) && !this.#congested) {
      this.#congested = true;
      this.#socket.pause();
    }
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
    if (this.#flushQueued) {
      this.#flushAgain = true;
      return;
    }
    this.#flushQueued = true;
    this.#socket.write('', this.#onFlushed);
  }

  end(finalData?: string | Uint8Array): void {
    if (this.#ending) return;
    this.#ending = true;
    const socket = this.#socket;
    if (!socket.writable) return;
    if (finalData === undefined) socket.end();
    else socket.end(finalData);
    // Read on (input is dropped from now on) so the peer's FIN arrives and the socket closes.
    socket.resume();
    socket.setTimeout(LINGER_MS);
  }

  destroy(): void {
    this.#ending = true;
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
        () => this.end(),
        (err: unknown) => {
          this.log.error({ err }, 'handler shutdown failed');
          this.end();
        },
      );
    } else {
      this.end();
    }
    return this.#closed;
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
      this.#reject(socket);
      return;
    }
    const conn = new SocketConnection(socket, this.#log, this.#release);
    this.#connections.add(conn);
    this.#connectionsTotal++;
    conn.log.debug({ remoteAddress: conn.remoteAddress, remotePort: conn.remotePort }, 'connection opened');
    conn.start(this.#options.handler, this.#idleTimeoutMs);
  };

  readonly #release = (conn: SocketConnection): void => {
    this.#connections.delete(conn);
    this.#bytesIn += conn.bytesIn;
    this.#bytesOut += conn.bytesOut;
  };

  #reject(socket: net.Socket): void {
    this.#connectionsRejected++;
    this.#rejectLog.log(
      'warn',
      { remoteAddress: socket.remoteAddress, maxConnections: this.#options.maxConnections },
      'connection limit reached; rejecting connection',
    );
    this.#rejected.add(socket);
    socket.on('error', ignoreError);
    socket.once('close', () => this.#rejected.delete(socket));
    // Drain the client's input so closing cannot turn into an RST that eats the error line.
    socket.resume();
    socket.setTimeout(REJECT_LINGER_MS, destroySocket);
    socket.end(this.#rejectMessage);
  }
}
