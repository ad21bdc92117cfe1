/**
 * The append-only log's writer: group commit with Redis's fsync policies.
 *
 * Records are appended to a buffer; the first append of a loop turn schedules a flush for the
 * end of the turn (after the poll phase has read every socket that had data, and before any
 * output of the turn is written: src/turn.ts), and
 * one flush writes everything buffered with one write() and, with `always`, one fdatasync(). Like
 * Redis (flushAppendOnlyFile in beforeSleep), the write and the `always` sync run on the event
 * loop's own thread: a thread-pool round trip per turn cost more than the system calls (on this
 * 2-core machine, 10-30% of pipeline-1 throughput). Requests that arrive while a sync blocks the
 * loop are read in the next turn and share the next sync: on a disk where a sync takes 1-10 ms,
 * one sync covers every write of that time, never one sync per request.
 *
 *   always     each flush is synced before its batch counts as written; `synced()` tells callers
 *              when their records are durable (the store holds replies and change events till then)
 *   everysec   flushes are written at once and synced once a second off the loop (thread pool)
 *   no         flushes are written at once; the OS decides when they reach the disk
 *
 * A failed write or sync keeps the batch: it is retried every second (after cutting the file
 * back to its last good length), `failed` says so meanwhile, and the batch's waiters are told it
 * failed; the caller refuses writes until a retry succeeds.
 */
import { closeSync, fdatasync, fdatasyncSync, ftruncateSync, writeSync } from 'node:fs';
import { beforeOutput } from '../../turn.js';
import type { JsonText } from '../store.js';
import { type RecordOutput, writeSetRecord } from './records.js';

export const FSYNC_POLICIES = ['always', 'everysec', 'no'] as const;
export type FsyncPolicy = (typeof FSYNC_POLICIES)[number];

/** File operations, so tests can make the disk fail. */
export interface LogIo {
  /** Writes all of `data` at the end of the file. */
  write(fd: number, data: Buffer): void;
  sync(fd: number): void;
  /** The same sync off the event loop (everysec). */
  syncInBackground(fd: number, done: (err: Error | null) => void): void;
  truncate(fd: number, length: number): void;
  close(fd: number): void;
}

export const NODE_IO: LogIo = {
  write(fd, data) {
    for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at);
  },
  sync: (fd) => fdatasyncSync(fd),
  syncInBackground: (fd, done) => fdatasync(fd, (err) => done(err)),
  truncate: (fd, length) => ftruncateSync(fd, length),
  close: (fd) => closeSync(fd),
};

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A batch nobody waited for may fail: that is reported through `failed`, not as unhandled.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export interface WriterEvents {
  /** Events held with records (see `hold`) whose records are now durable, in order. */
  durable(events: unknown[]): void;
  /** A write or sync failed (first failure of a run of them). */
  failed(err: Error): void;
  /** A retry succeeded after failures. */
  recovered(): void;
  /** A flush finished (for the owner's bookkeeping, e.g. deciding to rewrite). */
  flushed(): void;
}

export interface LogWriterOptions {
  readonly fd: number;
  /** Bytes already in the file (all durable: the file was just replayed or created). */
  readonly size: number;
  readonly policy: FsyncPolicy;
  readonly events: WriterEvents;
  readonly io?: LogIo;
  readonly now?: () => number;
  /** Time between retries after a failure, and between syncs with everysec. Default 1000 ms. */
  readonly intervalMs?: number;
}

/** The buffer's size between flushes; it grows for a big batch and shrinks back after. */
const BUFFER_BYTES = 64 << 10;

export class LogWriter implements RecordOutput {
  readonly policy: FsyncPolicy;
  private fd: number;
  /** Bytes written to the current file (the length a failed write is cut back to). */
  private written: number;
  /** Bytes of the current file known durable. */
  private syncedBytes: number;
  /** Records appended since the last flush: bytes [0, used) of buf, written in place (no string per record). */
  private buf = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  /**
   * SETs appended since the buffer was last brought up to date, as (key, value, expiresAt)
   * triples: they are encoded together at the flush (or before any other record, to keep the
   * order): one tight loop keeps the encoder's code and tables in cache, where encoding each amid
   * the request handling around it did not. With the one-pass encoder (records.ts), the log's CPU
   * per SET at pipeline 16 went from +9-10% to +2-5% of memory-only (docs/benchmarks.md).
   */
  private sets: (string | number | undefined)[] = [];
  private held: unknown[] = [];
  private waiting: Deferred | null = null;
  private scheduled = false;
  private truncateNeeded = false;
  /** A background sync (everysec) is running; its promise settles when it ends. */
  private backgroundSync: Promise<void> | null = null;
  /** While a rotation waits for the manifest, records gather but are not written. */
  private switching = false;
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retrying = false;
  private closed = false;
  private readonly io: LogIo;
  private readonly events: WriterEvents;
  private readonly now: () => number;
  private readonly intervalMs: number;
  /** The error of the last failed write or sync while no retry has succeeded yet. */
  failed: Error | null = null;
  /** When a sync last completed (ms on `now`); null before the first. */
  lastSyncAt: number | null = null;

  constructor(options: LogWriterOptions) {
    this.fd = options.fd;
    this.written = options.size;
    this.syncedBytes = options.size;
    this.policy = options.policy;
    this.events = options.events;
    this.io = options.io ?? NODE_IO;
    this.now = options.now ?? Date.now;
    this.intervalMs = options.intervalMs ?? 1000;
    if (this.policy === 'everysec') {
      this.timer = setInterval(() => this.syncSoon(), this.intervalMs).unref();
    }
  }

  /** Bytes of the current file on disk or on their way (written + buffered). */
  get fileBytes(): number {
    this.encodeSets();
    return this.written + this.used;
  }

  /** Bytes appended but not yet known durable (buffered, or written but not synced). */
  get pendingBytes(): number {
    this.encodeSets();
    return this.used + (this.written - this.syncedBytes);
  }

  /** Whether records are appended that are not written (and with always, synced) yet. */
  get pending(): boolean {
    return this.used > 0 || this.sets.length > 0;
  }

  /** Appends a record line (see records.ts). */
  append(line: string): void {
    this.encodeSets();
    this.room(3 * line.length);
    this.used += this.buf.write(line, this.used, 'utf8');
    this.schedule();
  }

  /** Appends a SET record (encoded straight into the buffer, with the turn's other SETs). */
  appendSet(key: string, value: JsonText, expiresAt: number | undefined): void {
    this.sets.push(key, value, expiresAt);
    this.schedule();
  }

  private encodeSets(): void {
    const sets = this.sets;
    const n = sets.length;
    if (n === 0) return;
    for (let i = 0; i < n; i += 3) {
      const key = sets[i] as string;
      const value = sets[i + 1] as JsonText;
      const expiresAt = sets[i + 2] as number | undefined;
      let end = writeSetRecord(this.buf, this.used, key, value, expiresAt);
      if (end === -1) {
        this.room(64 + 6 * key.length + 3 * value.length);
        end = writeSetRecord(this.buf, this.used, key, value, expiresAt);
      }
      this.used = end;
    }
    // A big batch's array is not kept for the next turn.
    if (n > 3 * 4096) this.sets = [];
    else sets.length = 0;
  }

  private room(bytes: number): void {
    if (this.used + bytes <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.used + bytes));
    this.buf.copy(bigger, 0, 0, this.used);
    this.buf = bigger;
  }

  private schedule(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      beforeOutput(this.flushNow);
    }
  }

  /**
   * Keeps `event` until every record appended so far is durable, then hands it to `durable` (in
   * order with other held events). With nothing pending it is handed over at once.
   */
  hold(event: unknown): void {
    if (this.pending || this.held.length > 0) this.held.push(event);
    else this.events.durable([event]);
  }

  /** Resolves when every record appended so far is durable; undefined when they all are already. */
  synced(): Promise<void> | undefined {
    if (!this.pending) return undefined;
    this.waiting ??= deferred();
    return this.waiting.promise;
  }

  /**
   * Switches to a new file: records appended before this call go to the old file (synced, then
   * closed), `before` runs (the manifest switch), then records appended after go to `fd`.
   */
  async rotate(fd: number, before: () => Promise<void>): Promise<void> {
    if (this.switching) throw new Error('a rotation is already running');
    this.flush(true);
    if (this.failed !== null) throw this.failed;
    this.switching = true;
    try {
      await this.backgroundSync;
      await before();
    } catch (err) {
      // The old file stays the log: what gathered meanwhile goes there.
      this.switching = false;
      if (this.pending) this.schedule();
      throw err;
    }
    this.switching = false;
    const old = this.fd;
    this.fd = fd;
    this.written = 0;
    this.syncedBytes = 0;
    try {
      this.io.close(old);
    } catch {
      // Synced already; a failing close loses nothing.
    }
    if (this.pending) this.schedule();
  }

  /** Writes and syncs whatever is buffered (clean shutdown), then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    await this.backgroundSync;
    this.failed = null;
    this.flush(true);
    try {
      this.io.close(this.fd);
    } catch {
      // Nothing more to lose.
    }
  }

  private readonly flushNow = (): void => {
    this.scheduled = false;
    if (!this.switching && this.failed === null) this.flush(this.policy === 'always');
  };

  /** Writes the buffer (and syncs it when `sync`); on failure keeps it for the retry. */
  private flush(sync: boolean): void {
    this.encodeSets();
    const bytes = this.used;
    if (bytes > 0) {
      const data = this.buf.subarray(0, bytes);
      try {
        if (this.truncateNeeded) {
          this.io.truncate(this.fd, this.written);
          this.truncateNeeded = false;
        }
        this.io.write(this.fd, data);
      } catch (err) {
        // The file may hold part of the batch: cut it back before the retry.
        this.truncateNeeded = true;
        this.fail(err as Error);
        return;
      }
      this.written += bytes;
      this.used = 0;
      if (this.buf.length > BUFFER_BYTES) this.buf = Buffer.allocUnsafe(BUFFER_BYTES);
    }
    if (sync && this.written > this.syncedBytes) {
      try {
        this.io.sync(this.fd);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      this.syncedBytes = this.written;
      this.lastSyncAt = this.now();
    }
    // Written (everysec, no) or durable (always): release waiters and held events.
    this.succeeded();
    const waiting = this.waiting;
    const held = this.held;
    this.waiting = null;
    if (held.length > 0) this.held = [];
    waiting?.resolve();
    if (held.length > 0) this.events.durable(held);
    if (bytes > 0) this.events.flushed();
  }

  /** everysec: one background sync of what is written, unless one is running. */
  private syncSoon(): void {
    if (this.backgroundSync !== null || this.failed !== null || this.written === this.syncedBytes) return;
    const target = this.written;
    const fd = this.fd;
    this.backgroundSync = new Promise<void>((resolve) => {
      this.io.syncInBackground(fd, (err) => {
        this.backgroundSync = null;
        if (err !== null) {
          this.fail(err);
        } else if (fd === this.fd) {
          this.syncedBytes = Math.max(this.syncedBytes, target);
          this.lastSyncAt = this.now();
        }
        resolve();
      });
    });
  }

  private succeeded(): void {
    if (this.retrying) {
      this.retrying = false;
      this.events.recovered();
    }
  }

  private fail(err: Error): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.reject(err);
    const first = !this.retrying;
    this.failed = err;
    this.retrying = true;
    if (first) this.events.failed(err);
    if (!this.closed) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.failed = null;
        this.flush(true);
      }, this.intervalMs).unref();
    }
  }
}
