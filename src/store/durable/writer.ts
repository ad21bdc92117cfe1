/**
 * The append-only log's writer: group commit with Redis's fsync policies.
 *
 * Records are appended to a buffer; the first append of a loop turn schedules a flush, and one
 * flush writes everything buffered in one write() (and, with `always`, one fdatasync). While a
 * flush is on disk, new records gather for the next one, so on a slow disk (1-10 ms per sync) a
 * sync covers every request that arrived meanwhile instead of queueing one sync per request.
 *
 *   always     each flush is synced before its batch counts as written; `synced()` tells callers
 *              when their records are durable (the store holds replies and change events till then)
 *   everysec   flushes are written at once and synced once a second in the background
 *   no         flushes are written at once; the OS decides when they reach the disk
 *
 * One loop does all file work in order (writes, syncs, switching files), so no two operations on a
 * file ever race. A failed write or sync keeps the batch: it is retried every second (after cutting
 * the file back to its last good length), `failed` says so meanwhile, and the batch's waiters are
 * told it failed: the caller refuses writes until a retry succeeds.
 */
import { close, fdatasync, ftruncate, write } from 'node:fs';

export const FSYNC_POLICIES = ['always', 'everysec', 'no'] as const;
export type FsyncPolicy = (typeof FSYNC_POLICIES)[number];

/** File operations, so tests can make the disk fail. */
export interface LogIo {
  /** Writes all of `data` at the end of the file. */
  write(fd: number, data: Buffer): Promise<void>;
  sync(fd: number): Promise<void>;
  truncate(fd: number, length: number): Promise<void>;
  close(fd: number): Promise<void>;
}

function writeAll(
  fd: number,
  data: Buffer,
  from: number,
  resolve: () => void,
  reject: (e: Error) => void,
): void {
  write(fd, data, from, data.length - from, null, (err, n) => {
    if (err !== null) reject(err);
    else if (from + n < data.length) writeAll(fd, data, from + n, resolve, reject);
    else resolve();
  });
}

function done(resolve: () => void, reject: (e: Error) => void) {
  return (err: Error | null) => (err === null ? resolve() : reject(err));
}

export const NODE_IO: LogIo = {
  write: (fd, data) => new Promise((resolve, reject) => writeAll(fd, data, 0, resolve, reject)),
  sync: (fd) => new Promise((resolve, reject) => fdatasync(fd, done(resolve, reject))),
  truncate: (fd, length) => new Promise((resolve, reject) => ftruncate(fd, length, done(resolve, reject))),
  close: (fd) => new Promise((resolve, reject) => close(fd, done(resolve, reject))),
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

/** A write being flushed: who waits for it, and the change events it releases. */
interface Batch {
  waiting: Deferred | null;
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

interface Rotation {
  readonly fd: number;
  /** Runs once every record before the switch is durable in the old file, before any after it is written. */
  readonly before: () => Promise<void>;
  readonly done: Deferred;
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

export class LogWriter {
  readonly policy: FsyncPolicy;
  private fd: number;
  /** Bytes written to the current file (the length a failed write is cut back to). */
  private written: number;
  /** Bytes of the current file known durable. */
  private syncedBytes: number;
  private lines: string[] = [];
  private bufferedChars = 0;
  private held: unknown[] = [];
  private waiting: Deferred | null = null;
  private inflight: Batch | null = null;
  private running = false;
  private scheduled = false;
  private syncWanted = false;
  private truncateNeeded = false;
  private rotation: Rotation | null = null;
  private idle: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly io: LogIo;
  private readonly events: WriterEvents;
  private readonly now: () => number;
  private readonly intervalMs: number;
  /** The error of the last failed write or sync while no retry has succeeded yet. */
  failed: Error | null = null;
  /** When a sync last completed (ms on `now`); null before the first. */
  lastSyncAt: number | null = null;
  /** Bytes appended over the writer's life (for the owner's growth check). */
  appendedBytes = 0;

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
      this.timer = setInterval(() => {
        if (this.written > this.syncedBytes || this.lines.length > 0) {
          this.syncWanted = true;
          this.kick();
        }
      }, this.intervalMs).unref();
    }
  }

  /** Bytes of the current file on disk or on their way (written + buffered). */
  get fileBytes(): number {
    return this.written + this.bufferedChars;
  }

  /** Bytes appended but not yet known durable (buffered, being written, or written but unsynced). */
  get pendingBytes(): number {
    return this.bufferedChars + (this.written - this.syncedBytes);
  }

  /** Whether records are appended that are not durable yet (buffered or being flushed). */
  get pending(): boolean {
    return this.lines.length > 0 || this.inflight !== null;
  }

  append(line: string): void {
    this.lines.push(line);
    this.bufferedChars += line.length;
    this.appendedBytes += line.length;
    if (!this.running && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.kick);
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
    if (this.lines.length > 0) {
      this.waiting ??= deferred();
      return this.waiting.promise;
    }
    const batch = this.inflight;
    if (batch === null) return undefined;
    batch.waiting ??= deferred();
    return batch.waiting.promise;
  }

  /**
   * Switches to a new file: records appended before this call go to the old file (synced, then
   * closed), `before` runs (the manifest switch), then records appended after go to `fd`.
   */
  rotate(fd: number, before: () => Promise<void>): Promise<void> {
    if (this.rotation !== null) throw new Error('a rotation is already pending');
    const rotation: Rotation = { fd, before, done: deferred() };
    this.rotation = rotation;
    this.kick();
    return rotation.done.promise;
  }

  /** Resolves once everything appended so far is written (and synced, per `sync`). */
  async drain(sync: boolean): Promise<void> {
    if (sync) this.syncWanted = true;
    this.kick();
    while (this.running || this.scheduled) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Flushes and syncs what is buffered, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    await this.drain(true);
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.io.close(this.fd).catch(() => {});
  }

  private readonly kick = (): void => {
    this.scheduled = false;
    if (!this.running && !this.closed) void this.run();
  };

  private async run(): Promise<void> {
    this.running = true;
    try {
      for (;;) {
        if (this.failed !== null) return;
        if (this.rotation !== null) await this.switchFiles(this.rotation);
        else if (this.lines.length > 0) await this.flush(this.policy === 'always' || this.syncWanted);
        else if (this.syncWanted && this.written > this.syncedBytes) await this.syncOnly();
        else {
          this.syncWanted = false;
          return;
        }
      }
    } finally {
      this.running = false;
      const idle = this.idle;
      this.idle = [];
      for (const resolve of idle) resolve();
    }
  }

  /** Writes the buffer (and syncs it when `sync`); false when the disk failed. */
  private async flush(sync: boolean): Promise<boolean> {
    const lines = this.lines;
    const held = this.held;
    const batch: Batch = { waiting: this.waiting };
    this.lines = [];
    this.held = [];
    this.bufferedChars = 0;
    this.waiting = null;
    this.inflight = batch;
    const data = Buffer.from(lines.length === 1 ? lines[0]! : lines.join(''), 'utf8');
    try {
      if (this.truncateNeeded) {
        await this.io.truncate(this.fd, this.written);
        this.truncateNeeded = false;
      }
      await this.io.write(this.fd, data);
    } catch (err) {
      // Keep the batch for the retry; the file may hold part of it: cut it back first.
      this.lines = lines.concat(this.lines);
      this.bufferedChars += data.length;
      this.held = held.concat(this.held);
      this.truncateNeeded = true;
      this.fail(err as Error, batch);
      return false;
    }
    this.written += data.length;
    if (sync && !(await this.sync(batch, held))) return false;
    this.inflight = null;
    this.succeeded();
    batch.waiting?.resolve();
    if (held.length > 0) this.events.durable(held);
    this.events.flushed();
    return true;
  }

  private async syncOnly(): Promise<void> {
    const held = this.held;
    this.held = [];
    const batch: Batch = { waiting: null };
    this.inflight = batch;
    if (!(await this.sync(batch, held))) return;
    this.inflight = null;
    this.succeeded();
    batch.waiting?.resolve();
    if (held.length > 0) this.events.durable(held);
  }

  private async sync(batch: Batch, held: unknown[]): Promise<boolean> {
    const target = this.written;
    try {
      await this.io.sync(this.fd);
    } catch (err) {
      this.held = held.concat(this.held);
      this.syncWanted = true;
      this.fail(err as Error, batch);
      return false;
    }
    this.syncedBytes = target;
    this.lastSyncAt = this.now();
    this.syncWanted = false;
    return true;
  }

  /** After a flush or sync that worked: the end of a run of failures, if there was one. */
  private succeeded(): void {
    if (this.retrying) {
      this.retrying = false;
      this.events.recovered();
    }
  }

  private retrying = false;

  private fail(err: Error, batch: Batch): void {
    this.inflight = null;
    batch.waiting?.reject(err);
    const first = !this.retrying;
    this.failed = err;
    this.retrying = true;
    if (first) this.events.failed(err);
    if (!this.closed) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.failed = null;
        this.syncWanted = true;
        this.kick();
      }, this.intervalMs).unref();
    }
  }

  private retryTimer: NodeJS.Timeout | undefined;

  private async switchFiles(rotation: Rotation): Promise<void> {
    // Everything appended before the switch: into the old file, durably.
    if (this.lines.length > 0 && !(await this.flush(true))) return this.rotationFailed(rotation);
    if (this.written > this.syncedBytes) {
      await this.syncOnly();
      if (this.failed !== null) return this.rotationFailed(rotation);
    }
    try {
      await rotation.before();
    } catch (err) {
      this.rotation = null;
      rotation.done.reject(err as Error);
      return;
    }
    const old = this.fd;
    this.fd = rotation.fd;
    this.written = 0;
    this.syncedBytes = 0;
    this.rotation = null;
    rotation.done.resolve();
    await this.io.close(old).catch(() => {});
  }

  private rotationFailed(rotation: Rotation): void {
    this.rotation = null;
    rotation.done.reject(this.failed ?? new Error('log write failed'));
  }
}
