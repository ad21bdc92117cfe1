/**
 * DurableStore: the in-memory engine with an append-only log under it (`--data-dir`).
 *
 * Every change the in-memory engine makes reaches the log as a record of its result (Journal, see
 * records.ts); the writer commits them in groups (writer.ts). Memory answers at once, so reads and
 * writes keep the in-memory engine's speed; what the fsync policy changes is when an answer may
 * leave:
 * - everysec / no: once the turn's write() is done (src/turn.ts), before any sync: a crash of the
 *   process loses nothing answered, a crash of the machine up to ~1-2 s with everysec;
 * - always: an answer that follows a change not yet on disk (the change's own reply, a GET that
 *   sees it, an OBSERVE push about it) waits for the sync that covers the change. Acknowledged or
 *   observed writes are durable.
 *
 * A disk error refuses every write (DISK_ERROR) until a retry of the failed batch succeeds; reads
 * go on. With `always`, the writes of the failed batch were never acknowledged (their replies are
 * DISK_ERROR too) but memory holds them and the retry persists them: a client that sees DISK_ERROR
 * must treat the write as "may or may not have happened", as after a timeout.
 *
 * Files (manifest.ts): one base (a snapshot), then incremental files in order. A rewrite switches
 * the writer to a new incremental file, snapshots memory into a new base in small chunks while
 * writes go on, then switches the manifest to the new base and the new incremental file.
 */

import {
  closeSync,
  existsSync,
  mkdirSync,
  open as openCallback,
  openSync,
  readdirSync,
  statSync,
  truncateSync,
  unlinkSync,
} from 'node:fs';
import { copyFile, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { isThenable, type MaybePromise } from '../../result.js';
import { type Journal, MemoryStore, type StoreLogger } from '../memory.js';
import type {
  BackupResult,
  ChangeListener,
  ChangeOp,
  Durability,
  JsonText,
  Page,
  PersistenceInfo,
  RewriteResult,
  SetOptions,
  Store,
  StoreStats,
} from '../store.js';
import { StoreError } from '../store.js';
import {
  baseName,
  fsyncDir,
  incrName,
  LogError,
  MANIFEST,
  type Manifest,
  readManifest,
  seqOf,
  writeManifest,
  writeManifestSync,
} from './manifest.js';
import { recordJournal, setRecord, writeSetRecord } from './records.js';
import { isTornTail, scanFile } from './scan.js';
import { type FsyncPolicy, type LogIo, LogWriter } from './writer.js';

/** The slice of a pino logger the durable engine uses. */
export interface DurableLogger extends StoreLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface DurableOptions {
  readonly dir: string;
  readonly appendfsync: FsyncPolicy;
  /** Rewrite when the incremental files exceed the base by this percentage (0 = never automatically). */
  readonly rewritePercentage: number;
  /** ... and are at least this many bytes. */
  readonly rewriteMinBytes: number;
  readonly logger: DurableLogger;
  readonly now?: () => number;
  /** For tests: file operations that can fail, and the retry/everysec interval. */
  readonly io?: LogIo;
  readonly intervalMs?: number;
}

/** How long one snapshot chunk may hold the loop (a rewrite of 1M keys keeps loop delay low). */
const CHUNK_BUDGET_MS = 4;
const CHUNK_BYTES = 1 << 20;
/** Stop filling a chunk here: the next CLOCK_EVERY records most likely still fit. */
const CHUNK_FULL = CHUNK_BYTES - (64 << 10);
const CLOCK_EVERY = 128;
const BACKUPS = 'backups';

type Change = [ChangeOp, string, JsonText | undefined];

export class DurableStore implements Store, Durability {
  readonly durability: Durability = this;
  private readonly memory: MemoryStore;
  private readonly writer: LogWriter;
  private readonly dir: string;
  private readonly logger: DurableLogger;
  private readonly now: () => number;
  private readonly always: boolean;
  private readonly options: DurableOptions;
  private manifest: Manifest;
  private baseBytes: number;
  /** Bytes of the incremental files before the one being written. */
  private closedIncrBytes: number;
  private listener: ChangeListener | null = null;
  /** Rewrites and backups run one at a time, in order. */
  private maintenance: Promise<unknown> = Promise.resolve();
  private rewriting: Promise<RewriteResult> | null = null;
  private rewrites = 0;
  private lastRewrite: RewriteResult | null = null;
  private closing = false;
  private autoRewriteAfter = 0;

  /** Opens (creating if need be) the data directory and replays it; throws LogError on damage. */
  constructor(options: DurableOptions) {
    this.options = options;
    this.dir = options.dir;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.always = options.appendfsync === 'always';
    this.memory = new MemoryStore({ now: this.now, logger: options.logger });
    const started = performance.now();
    const { manifest, size, records } = this.load();
    this.manifest = manifest;
    this.baseBytes = statSync(join(this.dir, manifest.base)).size;
    this.closedIncrBytes = 0;
    for (const name of manifest.incr.slice(0, -1))
      this.closedIncrBytes += statSync(join(this.dir, name)).size;
    const fd = openSync(join(this.dir, manifest.incr[manifest.incr.length - 1]!), 'a');
    this.writer = new LogWriter({
      fd,
      size,
      policy: options.appendfsync,
      io: options.io,
      now: this.now,
      intervalMs: options.intervalMs,
      events: {
        durable: (events) => this.release(events as Change[]),
        failed: (err) =>
          this.logger.error(
            { err, dir: this.dir },
            'the log cannot be written: refusing writes until it can',
          ),
        recovered: () => this.logger.info({ dir: this.dir }, 'the log is writable again: accepting writes'),
        flushed: () => this.maybeRewrite(),
      },
    });
    this.memory.setJournal(recordJournal(this.writer));
    const stats = this.memory.stats();
    this.logger.info(
      {
        dir: this.dir,
        appendfsync: options.appendfsync,
        records,
        keys: stats.keys,
        ms: Math.round(performance.now() - started),
      },
      'log replayed',
    );
  }

  // ---- start-up -----------------------------------------------------------------------------------

  private load(): { manifest: Manifest; size: number; records: number } {
    mkdirSync(this.dir, { recursive: true });
    let manifest = readManifest(this.dir);
    if (manifest === null) {
      const strays = readdirSync(this.dir).filter((name) => /^(base|incr)\.\d+\.log$/.test(name));
      if (strays.length > 0) {
        throw new LogError(
          `${this.dir}: holds log files (${strays.join(', ')}) but no ${MANIFEST}; restore the manifest or move the files away`,
        );
      }
      manifest = { base: baseName(1), incr: [incrName(1)] };
      for (const name of [manifest.base, ...manifest.incr]) createEmpty(join(this.dir, name));
      writeManifestSync(this.dir, manifest);
    }
    this.removeStrays(manifest);
    const sink: Journal = {
      set: (key, value, expiresAt) => this.memory.restoreSet(key, value, expiresAt),
      del: (key) => this.memory.restoreDel(key),
      drop: (namespace) => this.memory.restoreDrop(namespace),
      mset: (entries) => {
        for (const [key, value] of entries) this.memory.restoreSet(key, value, undefined);
      },
      expire: (key, expiresAt) => this.memory.restoreExpire(key, expiresAt),
      persist: (key) => this.memory.restorePersist(key),
    };
    const files = [manifest.base, ...manifest.incr];
    this.memory.restoreBegin();
    let records = 0;
    let size = 0;
    for (let i = 0; i < files.length; i++) {
      const path = join(this.dir, files[i]!);
      const scan = scanFile(path, sink);
      records += scan.records;
      size = scan.size;
      const problem = scan.problem;
      if (problem === null) continue;
      const last = i === files.length - 1;
      if (!isTornTail(problem, last)) {
        throw new LogError(
          `${path}: ${problem.reason} at byte ${problem.offset}; the log is damaged before its end, so the server will not start on it (see \`caretkv check-log\`)`,
        );
      }
      // A torn tail: the record being written when the process or machine stopped.
      truncateSync(path, scan.validBytes);
      size = scan.validBytes;
      this.logger.warn(
        {
          file: path,
          offset: problem.offset,
          droppedBytes: scan.size - scan.validBytes,
          reason: problem.reason,
        },
        'the log ended in a torn record (a crash mid-write); cut it off',
      );
    }
    this.memory.restoreDone();
    return { manifest, size, records };
  }

  /** Files a crash left behind: temp files and log files the manifest does not list. */
  private removeStrays(manifest: Manifest): void {
    const listed = new Set([manifest.base, ...manifest.incr]);
    for (const name of readdirSync(this.dir)) {
      if (name.endsWith('.tmp') || (/^(base|incr)\.\d+\.log$/.test(name) && !listed.has(name))) {
        unlinkSync(join(this.dir, name));
        this.logger.warn({ file: join(this.dir, name) }, 'removed a file a crash left behind');
      }
    }
  }

  // ---- answers: when they may leave -------------------------------------------------------------

  private refuseWhileFailed(): void {
    const err = this.writer.failed;
    if (err !== null) throw diskError(err);
  }

  /** A write's answer: with `always`, after the sync that covers it. */
  private written<T>(result: MaybePromise<T>): MaybePromise<T> {
    if (!this.always) return result;
    if (isThenable(result)) return result.then((value) => this.written(value));
    const synced = this.writer.synced();
    if (synced === undefined) return result;
    return synced.then(
      () => result,
      (err: Error) => {
        throw diskError(err);
      },
    );
  }

  /** A read's answer: with `always`, never before the changes it may see are durable. */
  private read<T>(result: MaybePromise<T>): MaybePromise<T> {
    if (!this.always) return result;
    if (isThenable(result)) return result.then((value) => this.read(value));
    if (this.writer.failed !== null) return result;
    const synced = this.writer.synced();
    if (synced === undefined) return result;
    return synced.then(
      () => result,
      () => result,
    );
  }

  private release(events: Change[]): void {
    const listener = this.listener;
    if (listener === null) return;
    for (const [op, key, value] of events) {
      try {
        listener(op, key, value);
      } catch (err) {
        this.logger.warn({ err, op, key }, 'store change listener threw');
      }
    }
  }

  private readonly hold: ChangeListener = (op, key, value) => this.writer.hold([op, key, value]);

  // ---- the Store contract -------------------------------------------------------------------------

  get(key: string): MaybePromise<JsonText | undefined> {
    return this.read(this.memory.get(key));
  }
  exists(key: string): MaybePromise<boolean> {
    return this.read(this.memory.exists(key));
  }
  mget(keys: readonly string[]): MaybePromise<(JsonText | undefined)[]> {
    return this.read(this.memory.mget(keys));
  }
  ttl(key: string): MaybePromise<number | null | undefined> {
    return this.read(this.memory.ttl(key));
  }
  keys(namespace: string, after: string | undefined, limit: number): MaybePromise<Page> {
    return this.read(this.memory.keys(namespace, after, limit));
  }
  namespaces(namespace: string, after: string | undefined, limit: number): MaybePromise<Page> {
    return this.read(this.memory.namespaces(namespace, after, limit));
  }
  count(namespace: string): MaybePromise<number> {
    return this.read(this.memory.count(namespace));
  }
  set(key: string, value: JsonText, options?: SetOptions): MaybePromise<boolean> {
    this.refuseWhileFailed();
    return this.written(this.memory.set(key, value, options));
  }
  del(key: string): MaybePromise<boolean> {
    this.refuseWhileFailed();
    return this.written(this.memory.del(key));
  }
  incr(key: string, by: number): MaybePromise<number> {
    this.refuseWhileFailed();
    return this.written(this.memory.incr(key, by));
  }
  cas(key: string, expected: JsonText, value: JsonText): MaybePromise<boolean> {
    this.refuseWhileFailed();
    return this.written(this.memory.cas(key, expected, value));
  }
  mset(entries: readonly (readonly [string, JsonText])[]): MaybePromise<void> {
    this.refuseWhileFailed();
    return this.written(this.memory.mset(entries));
  }
  drop(namespace: string): MaybePromise<number> {
    this.refuseWhileFailed();
    return this.written(this.memory.drop(namespace));
  }
  expire(key: string, ttl: number): MaybePromise<boolean> {
    this.refuseWhileFailed();
    return this.written(this.memory.expire(key, ttl));
  }
  persist(key: string): MaybePromise<boolean> {
    this.refuseWhileFailed();
    return this.written(this.memory.persist(key));
  }

  onChange(listener: ChangeListener | null): void {
    this.listener = listener;
    this.memory.onChange(listener === null ? null : this.always ? this.hold : listener);
  }

  stats(): StoreStats {
    return this.memory.stats();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.maintenance;
    await this.writer.close();
    this.memory.close();
  }

  // ---- Durability: INFO, rewrite, backup ----------------------------------------------------------

  info(): PersistenceInfo {
    return {
      dir: this.dir,
      appendfsync: this.options.appendfsync,
      lastFsyncAt: this.writer.lastSyncAt,
      rewriting: this.rewriting !== null,
      rewrites: this.rewrites,
      lastRewrite: this.lastRewrite,
      baseBytes: this.baseBytes,
      incrBytes: this.closedIncrBytes + this.writer.fileBytes,
      pendingBytes: this.writer.pendingBytes,
      diskError: this.writer.failed === null ? null : describeError(this.writer.failed),
    };
  }

  private maybeRewrite(): void {
    const { rewritePercentage, rewriteMinBytes } = this.options;
    if (this.rewriting !== null || this.closing || rewritePercentage === 0) return;
    if (this.now() < this.autoRewriteAfter) return;
    const incr = this.closedIncrBytes + this.writer.fileBytes;
    if (incr < rewriteMinBytes || incr * 100 < this.baseBytes * rewritePercentage) return;
    this.logger.info({ incrBytes: incr, baseBytes: this.baseBytes }, 'log grew past its limit: rewriting');
    this.rewrite().catch(() => {
      // Logged by the rewrite; try again in a minute rather than after every flush.
      this.autoRewriteAfter = this.now() + 60_000;
    });
  }

  rewrite(): Promise<RewriteResult> {
    if (this.rewriting !== null) return this.rewriting;
    if (this.closing) return Promise.reject(new StoreError('DISK_ERROR', 'the store is closing'));
    const run = this.maintenance.then(() => this.runRewrite());
    this.rewriting = run;
    this.maintenance = run.catch(() => {});
    const clear = (): void => {
      this.rewriting = null;
    };
    run.then(clear, clear);
    return run;
  }

  private async runRewrite(): Promise<RewriteResult> {
    const started = performance.now();
    const seq = seqOf(this.manifest.incr[this.manifest.incr.length - 1]!) + 1;
    const tmp = join(this.dir, `${baseName(seq)}.tmp`);
    try {
      const switched = await this.switchIncr(seq);
      const { keys, bytes } = await this.snapshotTo(tmp);
      await rename(tmp, join(this.dir, baseName(seq)));
      const next: Manifest = { base: baseName(seq), incr: [incrName(seq)] };
      await writeManifest(this.dir, next);
      this.manifest = next;
      this.baseBytes = bytes;
      this.closedIncrBytes = 0;
      for (const name of [switched.base, ...switched.incr]) {
        await unlink(join(this.dir, name)).catch(() => {});
      }
      const result: RewriteResult = {
        at: this.now(),
        durationMs: Math.round(performance.now() - started),
        keys,
        baseBytes: bytes,
      };
      this.rewrites++;
      this.lastRewrite = result;
      this.logger.info({ ...result, dir: this.dir }, 'log rewritten');
      return result;
    } catch (err) {
      await unlink(tmp).catch(() => {});
      this.logger.error({ err, dir: this.dir }, 'log rewrite failed; the log stays as it was');
      throw err instanceof StoreError ? err : diskError(err as Error);
    }
  }

  /**
   * Points the writer at a new incremental file `seq`, listed in the manifest after the current
   * files: from this moment every change lands in it. Returns the manifest as it was before.
   */
  private async switchIncr(seq: number): Promise<Manifest> {
    const previous = this.manifest;
    const name = incrName(seq);
    const path = join(this.dir, name);
    await unlink(path).catch(() => {});
    // A plain descriptor, not a FileHandle: the writer owns and closes it.
    const fd = await openFd(path, 'a');
    const next: Manifest = { base: previous.base, incr: [...previous.incr, name] };
    try {
      await this.writer.rotate(fd, () => writeManifest(this.dir, next));
    } catch (err) {
      closeSync(fd);
      await unlink(path).catch(() => {});
      throw err;
    }
    this.manifest = next;
    const old = previous.incr[previous.incr.length - 1]!;
    this.closedIncrBytes += (await stat(join(this.dir, old))).size;
    return previous;
  }

  /** Writes every live key to `path` in chunks that each hold the loop for a few ms; synced. */
  private async snapshotTo(path: string): Promise<{ keys: number; bytes: number }> {
    const file = await open(path, 'w');
    try {
      const cursor = this.memory.snapshot();
      // Records are written straight into one buffer, reused chunk after chunk: a rewrite of 1M
      // keys then makes almost no garbage (strings per record made the GC pause for ~25 ms).
      const buf = Buffer.allocUnsafe(CHUNK_BYTES);
      let used = 0;
      let spill: string[] = []; // records that did not fit (rare: only with huge values)
      let keys = 0;
      let bytes = 0;
      const visit = (key: string, value: JsonText, expiresAt: number | undefined): void => {
        keys++;
        const end = writeSetRecord(buf, used, key, value, expiresAt);
        if (end === -1) spill.push(setRecord(key, value, expiresAt));
        else used = end;
      };
      let more = true;
      while (more) {
        if (this.closing) throw new StoreError('DISK_ERROR', 'the store closed during the rewrite');
        const deadline = performance.now() + CHUNK_BUDGET_MS;
        do more = cursor.next(visit, CLOCK_EVERY);
        while (more && used < CHUNK_FULL && spill.length === 0 && performance.now() < deadline);
        if (used > 0) {
          await file.write(buf, 0, used);
          bytes += used;
          used = 0;
        }
        if (spill.length > 0) {
          const data = Buffer.from(spill.join(''), 'utf8');
          spill = [];
          await file.write(data);
          bytes += data.length;
        }
        if (used === 0 && more) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      await file.datasync();
      return { keys, bytes };
    } finally {
      await file.close();
    }
  }

  /**
   * A consistent copy of the log: the writer switches to a new incremental file, and the files
   * before the switch (immutable from then on) are copied with a manifest of their own. The copy
   * holds every change made before the switch and none after.
   */
  backup(): Promise<BackupResult> {
    if (this.closing) return Promise.reject(new StoreError('DISK_ERROR', 'the store is closing'));
    const run = this.maintenance.then(() => this.runBackup());
    this.maintenance = run.catch(() => {});
    return run;
  }

  private async runBackup(): Promise<BackupResult> {
    const seq = seqOf(this.manifest.incr[this.manifest.incr.length - 1]!) + 1;
    const root = join(this.dir, BACKUPS);
    let target = join(root, new Date(this.now()).toISOString().replace(/:/g, '-'));
    try {
      const previous = await this.switchIncr(seq);
      await mkdir(root, { recursive: true });
      for (let n = 2; existsSync(target); n++) target = `${target.replace(/~\d+$/, '')}~${n}`;
      await mkdir(target);
      let bytes = 0;
      const names = [previous.base, ...previous.incr];
      for (const name of names) {
        const to = join(target, name);
        await copyFile(join(this.dir, name), to);
        const handle = await open(to, 'r+');
        await handle.datasync();
        await handle.close();
        bytes += (await stat(to)).size;
      }
      await writeManifest(target, previous);
      await fsyncDir(root);
      const result: BackupResult = { dir: target, files: names.length + 1, bytes };
      this.logger.info({ ...result }, 'backup written');
      return result;
    } catch (err) {
      this.logger.error({ err, dir: target }, 'backup failed');
      throw err instanceof StoreError ? err : diskError(err as Error);
    }
  }
}

/** Creates an empty file; its directory entry is made durable by the manifest's directory sync. */
function createEmpty(path: string): void {
  closeSync(openSync(path, 'a'));
}

const openFd = promisify(openCallback);

function describeError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === undefined ? err.message : `${code}: ${err.message}`;
}

function diskError(err: Error): StoreError {
  return new StoreError(
    'DISK_ERROR',
    `the log on disk cannot be written (${describeError(err)}); writes are refused until it can, reads go on`,
  );
}
