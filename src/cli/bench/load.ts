import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { build, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import type { Target } from './options.js';
import { type ErrorTally, type ReplyCounter, replyCounter } from './replies.js';
import type { Ring } from './workload.js';

/** The part of a run one thread drives: a contiguous range of the run's connections. */
export interface LoadShare {
  readonly target: Target;
  readonly host: string;
  readonly port: number;
  readonly pipeline: number;
  /** Index of this share's first connection in the whole run, and how many it owns. */
  readonly firstConn: number;
  readonly conns: number;
  readonly totalConns: number;
  /** Measured requests per connection of this share (`--requests`), or null (`--duration`). */
  readonly quotas: readonly number[] | null;
  readonly warmupMs: number;
  readonly durationMs: number | null;
  /** Fail when no reply arrives for this long, and bound the connect phase by it. */
  readonly timeoutMs: number;
  readonly ring: Ring;
  /** Where each connection starts in the ring; by default spread evenly around it. */
  readonly cursors?: readonly number[];
}

/** What one thread measured; histograms travel between threads in HdrHistogram's compressed form. */
export interface LoadResult {
  readonly requests: number;
  readonly errors: Record<string, number>;
  readonly histogram: string;
  /** From the end of warm-up to the last measured reply. */
  readonly elapsedMs: number;
  /** Share of the measured run this thread's event loop was busy (0..1): above ~0.9 it is saturated. */
  readonly eventLoopUtilization: number;
  /** True when `stop()` ended the run before its duration or request count. */
  readonly stoppedEarly: boolean;
}

/** A run that could not complete: the server is unreachable, died, hung or answered nonsense. */
export class BenchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchError';
  }
}

/** Microseconds; replies slower than a minute are recorded as a minute. */
export const HISTOGRAM_MAX_US = 60_000_000;
export function newHistogram(): Histogram {
  return build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HISTOGRAM_MAX_US,
    numberOfSignificantValueDigits: 3,
  });
}

/** Per-connection read buffer: 64 KiB, shrinking with many connections (at most ~32 MiB per thread). */
function readBufferBytes(conns: number): number {
  return Math.max(4096, Math.min(64 * 1024, Math.floor((32 * 1024 * 1024) / conns)));
}

const CONNECT_HINTS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is the server running? check --host and --port)',
  ENOTFOUND: 'host not found (check --host)',
  EHOSTUNREACH: 'host unreachable (check --host)',
  ETIMEDOUT: 'timed out',
  ECONNRESET: 'connection reset by the server',
};

function describe(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return (code && CONNECT_HINTS[code]) ?? err.message;
}

/** One connection's closed loop: `pipeline` requests in flight, a send stamp per slot. */
class Conn {
  socket: net.Socket | null = null;
  connected = false;
  done = false;
  sent = 0;
  received = 0;
  /** Replies with a sequence number from here on are measured; Infinity during warm-up. */
  measuredFrom: number;
  /** Never send past this sequence number (Infinity with `--duration`). */
  limit = Number.POSITIVE_INFINITY;
  cursor: number;
  readonly stamps: Float64Array;

  constructor(
    readonly index: number,
    readonly counter: ReplyCounter,
    readonly quota: number | null,
    pipeline: number,
    cursor: number,
    warmup: boolean,
  ) {
    this.stamps = new Float64Array(pipeline);
    this.cursor = cursor;
    this.measuredFrom = warmup ? Number.POSITIVE_INFINITY : 0;
    if (!warmup && quota !== null) this.limit = quota;
  }
}

/**
 * Drives one share of a run's connections from the current thread. Closed loop: each connection
 * keeps `pipeline` requests in flight and refills from the ring with one write per read. Replies
 * that arrive in one read share one receive timestamp, and requests written together share one
 * send timestamp: clock reads and histogram updates are per read, not per request.
 */
export class LoadGenerator {
  readonly #share: LoadShare;
  readonly #conns: Conn[] = [];
  readonly #errors: ErrorTally = new Map();
  #histogram = newHistogram();
  readonly #ring: Buffer;
  readonly #offsets: Int32Array;
  readonly #pipeline: number;

  #measured = 0;
  #received = 0;
  #stopping = false;
  #stoppedEarly = false;
  #finished = false;
  #measureStart = 0;
  #lastReplyAt = 0;
  #doneConns = 0;
  #failure: BenchError | null = null;
  #settle: { resolve: () => void; reject: (err: Error) => void } | null = null;
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(share: LoadShare) {
    this.#share = share;
    this.#ring = Buffer.from(share.ring.bytes);
    this.#offsets = new Int32Array(share.ring.offsets);
    this.#pipeline = share.pipeline;
  }

  /** Measured replies so far (for progress lines). */
  get measured(): number {
    return this.#measured;
  }

  /** Open every connection; rejects with a clear message if any fails or the phase times out. */
  connect(): Promise<void> {
    const { host, port, conns, firstConn, totalConns, quotas, pipeline, warmupMs, target, timeoutMs } =
      this.#share;
    const slots = this.#share.ring.count;
    return this.#phase((resolve) => {
      let pending = conns;
      if (pending === 0) {
        resolve();
        return;
      }
      this.#timer(
        setTimeout(() => {
          this.#fail(`cannot connect to ${host}:${port}: timed out after ${timeoutMs / 1000} s`);
        }, timeoutMs),
      );
      for (let i = 0; i < conns; i++) {
        const index = firstConn + i;
        // Spread the connections around the ring so they do not send the same keys in lockstep.
        const cursor = this.#share.cursors?.[i] ?? Math.floor((index * slots) / totalConns) % slots;
        const conn = new Conn(
          index,
          replyCounter(target, this.#errors),
          quotas ? quotas[i]! : null,
          pipeline,
          cursor,
          warmupMs > 0,
        );
        this.#conns.push(conn);
        const socket = net.connect({
          host,
          port,
          noDelay: true,
          // One read buffer per connection, reused: no allocation per read.
          onread: {
            buffer: Buffer.allocUnsafe(readBufferBytes(conns)),
            callback: (nread, buf) => {
              this.#onRead(conn, nread, buf as Buffer);
              return true;
            },
          },
        });
        conn.socket = socket;
        socket.on('connect', () => {
          conn.connected = true;
          if (--pending === 0) {
            this.#clearTimers();
            resolve();
          }
        });
        socket.on('error', (err) => {
          this.#fail(
            conn.connected
              ? `connection to ${host}:${port} failed mid-run: ${describe(err)}`
              : `cannot connect to ${host}:${port}: ${describe(err)}`,
          );
        });
        socket.on('close', () => {
          if (!conn.done && conn.connected) {
            this.#fail(
              `${host}:${port} closed a connection mid-run after ${conn.received} of ${conn.sent} replies ` +
                '(did the server stop, crash or refuse the connection?)',
            );
          }
        });
      }
    });
  }

  /** Run the load; resolves when the duration or request count is reached and every reply is in. */
  run(): Promise<LoadResult> {
    const { warmupMs, durationMs, timeoutMs, host, port } = this.#share;
    const elu0 = performance.eventLoopUtilization();
    // Resolved by #finishConn when the last connection is done.
    return this.#phase(() => {
      const start = performance.now();
      const begin = (): void => {
        this.#measureStart = performance.now();
        this.#lastReplyAt = this.#measureStart;
        if (durationMs !== null) this.#timer(setTimeout(() => this.stop(false), durationMs));
      };
      if (warmupMs > 0) {
        this.#timer(
          setTimeout(() => {
            this.#endWarmup();
            begin();
          }, warmupMs),
        );
      } else {
        begin();
      }

      // Stall watchdog: a dead, hung or overloaded server ends the run with an error, not a hang.
      let seen = -1;
      let quietSince = start;
      this.#timer(
        setInterval(
          () => {
            const now = performance.now();
            if (this.#received !== seen) {
              seen = this.#received;
              quietSince = now;
            } else if (now - quietSince >= timeoutMs) {
              const inFlight = this.#conns.reduce((sum, c) => sum + (c.sent - c.received), 0);
              this.#fail(
                `no reply from ${host}:${port} for ${(timeoutMs / 1000).toFixed(1)} s with ${inFlight} ` +
                  'requests in flight (is the server hung or overloaded? raise --timeout to wait longer)',
              );
            }
          },
          Math.min(1000, Math.max(50, timeoutMs / 4)),
        ),
      );

      const now = performance.now();
      for (const conn of this.#conns) {
        const first = Math.min(this.#pipeline, conn.limit);
        if (first > 0) this.#send(conn, first, now);
        else this.#finishConn(conn);
      }
    }).then(() => {
      const elu = performance.eventLoopUtilization(elu0).utilization;
      return {
        requests: this.#measured,
        errors: Object.fromEntries(this.#errors),
        histogram: encodeIntoCompressedBase64(this.#histogram),
        elapsedMs: Math.max(0, this.#lastReplyAt - this.#measureStart),
        eventLoopUtilization: elu,
        stoppedEarly: this.#stoppedEarly,
      };
    });
  }

  /** Stop sending (end of duration, or early with `early`); the run ends when in-flight replies are in. */
  stop(early = true): void {
    if (this.#stopping || this.#finished) return;
    if (this.#measureStart === 0) this.#endWarmup();
    this.#stopping = true;
    this.#stoppedEarly = early;
    for (const conn of this.#conns) if (!conn.done && conn.received === conn.sent) this.#finishConn(conn);
  }

  /** Abort: destroy every socket and timer; a pending phase rejects with `reason`. */
  close(reason = 'bench aborted'): void {
    this.#fail(reason);
  }

  #endWarmup(): void {
    for (const conn of this.#conns) {
      conn.measuredFrom = conn.sent;
      if (conn.quota !== null) conn.limit = conn.sent + conn.quota;
    }
    // Requests already in flight finish unmeasured; errors so far belong to the warm-up.
    this.#errors.clear();
    this.#histogram = newHistogram();
    this.#measured = 0;
    if (this.#measureStart === 0) this.#measureStart = performance.now();
  }

  #onRead(conn: Conn, nread: number, buf: Buffer): void {
    if (this.#finished || nread <= 0) return;
    const t = performance.now();
    let n: number;
    try {
      n = conn.counter.feed(buf, 0, nread);
    } catch (err) {
      this.#fail(`bad reply from ${this.#share.host}:${this.#share.port}: ${(err as Error).message}`);
      return;
    }
    if (n === 0) return;
    const first = conn.received;
    const end = first + n;
    if (end > conn.sent) {
      this.#fail(
        `${this.#share.host}:${this.#share.port} sent more replies than requests (${end} > ${conn.sent}); ` +
          `is it really a ${this.#share.target} server?`,
      );
      return;
    }
    conn.received = end;
    this.#received += n;

    const from = first >= conn.measuredFrom ? first : Math.min(end, conn.measuredFrom);
    if (from < end) {
      const stamps = conn.stamps;
      const pipeline = this.#pipeline;
      // Consecutive requests from one write share a stamp: record each run with one call.
      let runStamp = stamps[from % pipeline]!;
      let runCount = 0;
      for (let seq = from; seq < end; seq++) {
        const stamp = stamps[seq % pipeline]!;
        if (stamp !== runStamp) {
          this.#record(t - runStamp, runCount);
          runStamp = stamp;
          runCount = 0;
        }
        runCount++;
      }
      this.#record(t - runStamp, runCount);
      this.#measured += end - from;
      this.#lastReplyAt = t;
    }

    let next = this.#stopping ? 0 : n;
    if (conn.sent + next > conn.limit) next = conn.limit - conn.sent;
    if (next > 0) this.#send(conn, next, t);
    else if (conn.received === conn.sent) this.#finishConn(conn);
  }

  #record(ms: number, count: number): void {
    const us = Math.round(ms * 1000);
    this.#histogram.recordValueWithCount(Math.min(us, HISTOGRAM_MAX_US), count);
  }

  #send(conn: Conn, count: number, now: number): void {
    const stamps = conn.stamps;
    const pipeline = this.#pipeline;
    for (let seq = conn.sent, last = conn.sent + count; seq < last; seq++) stamps[seq % pipeline] = now;
    conn.sent += count;

    const slots = this.#share.ring.count;
    const offsets = this.#offsets;
    const socket = conn.socket!;
    const start = conn.cursor;
    let end = start + count;
    if (end <= slots) {
      socket.write(this.#ring.subarray(offsets[start]!, offsets[end]!));
    } else {
      // Wrapping around the ring: two slices, one syscall.
      end -= slots;
      socket.cork();
      socket.write(this.#ring.subarray(offsets[start]!, offsets[slots]!));
      socket.write(this.#ring.subarray(0, offsets[end]!));
      socket.uncork();
    }
    conn.cursor = end === slots ? 0 : end;
  }

  #finishConn(conn: Conn): void {
    if (conn.done) return;
    conn.done = true;
    conn.socket?.destroy();
    if (++this.#doneConns === this.#conns.length) {
      this.#finished = true;
      this.#clearTimers();
      this.#settle?.resolve();
    }
  }

  /** A phase (connect, run) settles when it completes or when anything fails, whichever is first. */
  #phase(body: (resolve: () => void) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.#failure) {
        reject(this.#failure);
        return;
      }
      this.#settle = { resolve, reject };
      body(resolve);
    });
  }

  #fail(message: string): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#failure = new BenchError(message);
    this.#clearTimers();
    for (const conn of this.#conns) {
      conn.done = true;
      conn.socket?.destroy();
    }
    this.#settle?.reject(this.#failure);
  }

  #timer(timer: NodeJS.Timeout): void {
    this.#timers.push(timer);
  }

  #clearTimers(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.length = 0;
  }
}
