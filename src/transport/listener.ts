/**
 * The listener: accepts TCP (or TLS) connections, admits them against the connection limits, wires
 * each to its handler (connection.ts) and runs graceful shutdown. Knows nothing of what the bytes
 * mean.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { LogLimiter } from '../log.js';
import type { AddressLimit } from './address-limit.js';
import { SocketConnection } from './connection.js';
import { TurnFlusher } from './flush.js';
import type { HandlerFactory } from './types.js';

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
/** A rejected client gets this long to read its error line and close. */
const REJECT_LINGER_MS = 2_000;

const seconds = (s: number): number => (s > 0 ? Math.max(1, Math.round(s * 1000)) : 0);

function destroySocket(this: net.Socket): void {
  this.destroy();
}

function ignoreError(): void {
  // A rejected client's faults need no report: the socket is being dropped anyway.
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
