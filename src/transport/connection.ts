/**
 * One accepted socket as the handler sees it (`Connection`): writes held and flushed once per
 * turn, backpressure both ways, the idle timeout, end/linger and graceful shutdown. The listener
 * (listener.ts) creates one per accepted socket.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import type { TurnFlusher } from './flush.js';
import type { Connection, ConnectionHandler, HandlerFactory } from './types.js';

/**
 * After we end a connection we keep reading (and discarding) until the peer's FIN: closing a
 * socket with unread input makes the kernel send RST and throw away our final bytes. A peer that
 * neither reads nor closes for this long is gone.
 */
const LINGER_MS = 10_000;
/** At shutdown, a flushed connection whose client sent nothing for this long is closed. */
const SHUTDOWN_QUIET_MS = 200;

/** Unique for the life of the process, across transports. */
let nextConnectionId = 1;

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

/** One accepted socket, as the handler sees it. Listener fields are bound once per connection. */
export class SocketConnection implements Connection {
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
