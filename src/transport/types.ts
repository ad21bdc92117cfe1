import type { Logger } from 'pino';

/**
 * The transport's side of one client connection, as a protocol handler sees it.
 * The transport knows nothing of what the bytes mean: it moves them, applies backpressure,
 * enforces idle timeouts and limits, and runs the connection's lifecycle.
 */
export interface Connection {
  /** Unique for the life of the process; appears in every log line about this connection. */
  readonly id: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** A pino child logger bound to `{ conn: id }`. */
  readonly log: Logger;
  /**
   * Queue bytes for the client. Never throws, even after the peer vanished (the bytes are dropped).
   * A turn's writes go out together at the end of the turn (in one socket write), or at once when
   * they reach the high-water mark. When pending output passes the high-water mark the transport
   * stops reading from the client until the socket drains, and `congested` turns true.
   */
  write(data: string | Uint8Array): void;
  /**
   * Bytes waiting for a client that is behind: what the socket has not handed to the kernel, plus
   * this turn's writes once the socket holds any. A client that keeps up has none pending.
   */
  readonly pendingBytes: number;
  /** True while pending output is above the high-water mark; handlers should stop producing. */
  readonly congested: boolean;
  /**
   * Stop reading from the client until `resumeInput()`: for a handler that already holds more
   * input than it will process this turn. Independent of the pause while congested: reading goes
   * on only when neither holds it.
   */
  pauseInput(): void;
  resumeInput(): void;
  /**
   * Ask for one `handler.drain()` call once everything written so far has been handed to the
   * kernel, whether or not the connection was ever `congested`: a handler that holds back output
   * below its own bound (smaller than the transport's high-water mark) learns that way when the
   * client caught up, which the `congested` -> drain path never reports. Requests made before that
   * flush share one call (a request made after further writes waits for those writes too). The
   * call never comes once the connection is closed or ended, and never synchronously from this
   * method. Cheap enough for rare events (one empty write), not meant for every write.
   */
  notifyWhenFlushed(): void;
  /** Flush pending output, then close. Idempotent. */
  end(finalData?: string | Uint8Array): void;
  /** Close now, dropping pending output. Idempotent. */
  destroy(): void;
  /** A connection marked exempt is never closed by the idle timeout (e.g. subscribers). */
  idleExempt: boolean;
  /** True once `end`/`destroy` was called or the socket closed. */
  readonly closed: boolean;
}

/**
 * What a protocol plugs into the transport: one handler per connection.
 * Calls never overlap; all happen on the event loop.
 */
export interface ConnectionHandler {
  /** Bytes from the client, in order. */
  data(chunk: Buffer): void;
  /**
   * The client half-closed (sent FIN). The handler finishes what it has already read, then calls
   * `conn.end()`. Default when absent: the transport ends the connection after pending output flushes.
   */
  end?(): void;
  /**
   * Pending output fell back under the high-water mark after the connection was `congested`, or
   * output flushed after `conn.notifyWhenFlushed()`. Handlers must tolerate a call with nothing new
   * to do (both causes can coincide).
   */
  drain?(): void;
  /**
   * Graceful shutdown began: take no new input, finish requests already read, then resolve.
   * The transport ends the connection afterwards (and destroys it when the grace period runs out).
   */
  shutdown?(): void | Promise<void>;
  /** The socket is gone (for any reason). Release everything tied to the connection. Called once. */
  close(): void;
}

/** Creates the handler for each accepted connection. */
export type HandlerFactory = (conn: Connection) => ConnectionHandler;
