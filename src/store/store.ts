/**
 * The Store contract: everything the server needs from a storage engine.
 *
 * - Keys arrive canonical and already validated by `keypath.ts` (no leading `^`, no empty segment).
 *   A namespace is a canonical path too; `''` is the root namespace.
 * - Values are JSON text (the output of `JSON.stringify`): engines store and return text, so a GET
 *   needs no re-serialization and stored values can never alias a caller's objects.
 * - Results may or may not be promises (`MaybePromise`): the in-memory engine answers synchronously
 *   and costs no promise per request; durable and remote engines answer asynchronously. Engines
 *   apply operations in call order even when they answer later (a call never takes effect before
 *   an earlier one); callers preserve per-connection response order either way.
 * - Domain failures (`WRONG_TYPE`, `OVERFLOW`) are thrown (or rejected) as `StoreError`.
 */

import type { MaybePromise } from '../result.js';

export type { MaybePromise };

/** JSON text, as produced by JSON.stringify. */
export type JsonText = string;

export interface SetOptions {
  /** Time to live in milliseconds (> 0). Without it, a SET removes any earlier TTL. */
  ttl?: number;
  /** Write only when the key does not exist. */
  ifAbsent?: boolean;
  /** Write only when the key exists. */
  ifPresent?: boolean;
}

export interface Page {
  /** Sorted (by UTF-16 code units, like `Array.prototype.sort`) names directly in the namespace. */
  names: string[];
  /** Pass as `after` to get the next page; null when this page is the last. */
  next: string | null;
}

/** What a change listener hears. For `drop`, `key` is the namespace path that was removed. */
export type ChangeOp = 'set' | 'del' | 'expire' | 'drop' | 'incr' | 'cas';
export type ChangeListener = (op: ChangeOp, key: string, value: JsonText | undefined) => void;

export interface StoreStats {
  keys: number;
  namespaces: number;
  keysWithTtl: number;
  expired: number;
}

export interface Store {
  get(key: string): MaybePromise<JsonText | undefined>;
  /** Resolves to whether the value was written (conditions may prevent it). */
  set(key: string, value: JsonText, options?: SetOptions): MaybePromise<boolean>;
  /** Resolves to whether the key existed. */
  del(key: string): MaybePromise<boolean>;
  exists(key: string): MaybePromise<boolean>;
  /** Adds `by` to a number value (a missing key starts at 0); keeps any TTL. Throws WRONG_TYPE / OVERFLOW. */
  incr(key: string, by: number): MaybePromise<number>;
  /** Writes `value` only when the current value deep-equals `expected` (JSON text). Keeps no TTL. */
  cas(key: string, expected: JsonText, value: JsonText): MaybePromise<boolean>;
  mget(keys: readonly string[]): MaybePromise<(JsonText | undefined)[]>;
  /** All entries or none. */
  mset(entries: readonly (readonly [string, JsonText])[]): MaybePromise<void>;
  keys(namespace: string, after: string | undefined, limit: number): MaybePromise<Page>;
  namespaces(namespace: string, after: string | undefined, limit: number): MaybePromise<Page>;
  /** Keys in the whole subtree. */
  count(namespace: string): MaybePromise<number>;
  /** Removes the subtree; resolves to how many keys went. Must not block the event loop for long. */
  drop(namespace: string): MaybePromise<number>;
  /** Resolves to whether the key exists (and now expires). */
  expire(key: string, ttl: number): MaybePromise<boolean>;
  /** Milliseconds left; null when the key has no TTL; undefined when the key does not exist. */
  ttl(key: string): MaybePromise<number | null | undefined>;
  /** Resolves to whether a TTL was removed. */
  persist(key: string): MaybePromise<boolean>;
  /** At most one listener (the composition root fans out). Costs nothing while unset. */
  onChange(listener: ChangeListener | null): void;
  /**
   * An engine shared by several nodes hears other nodes' changes over a connection that can drop:
   * it calls `listener` each time changes may have been missed from then on. Absent in one process.
   */
  onEventsLost?(listener: () => void): void;
  /** Counts for INFO. A remote engine asks its backend (so it may answer with a promise). */
  stats(): MaybePromise<StoreStats>;
  /** Stops timers and releases resources. */
  close(): MaybePromise<void>;
  /** Engines that keep a log on disk: its state (INFO), and the admin operations on it. */
  readonly durability?: Durability;
}

/** What a durable engine offers beyond the Store contract. */
export interface Durability {
  info(): PersistenceInfo;
  /** Compacts the log now (joins a rewrite already running). Rejects with a DISK_ERROR StoreError. */
  rewrite(): Promise<RewriteResult>;
  /** Writes a consistent copy of the log that a server can start from; resolves to where it is. */
  backup(): Promise<BackupResult>;
}

export interface PersistenceInfo {
  readonly dir: string;
  readonly appendfsync: 'always' | 'everysec' | 'no';
  /** When the log was last synced to disk (ms since the epoch); null before the first sync. */
  readonly lastFsyncAt: number | null;
  readonly rewriting: boolean;
  readonly rewrites: number;
  readonly lastRewrite: RewriteResult | null;
  readonly baseBytes: number;
  readonly incrBytes: number;
  /** Appended but not yet known durable (buffered, being written, or written and not synced). */
  readonly pendingBytes: number;
  /** The disk error that currently refuses writes (null while the log writes fine). */
  readonly diskError: string | null;
}

export interface RewriteResult {
  /** When it finished (ms since the epoch). */
  readonly at: number;
  readonly durationMs: number;
  readonly keys: number;
  readonly baseBytes: number;
}

export interface BackupResult {
  /** The backup's directory: start a server with `--data-dir` pointing there (or a copy of it). */
  readonly dir: string;
  readonly files: number;
  readonly bytes: number;
}

/**
 * CROSS_NAMESPACE: an MSET over several top-level namespaces on an engine that shards by them.
 * UNAVAILABLE: a remote engine's backend is down or too slow (any operation may answer it).
 */
export type StoreErrorCode = 'WRONG_TYPE' | 'OVERFLOW' | 'DISK_ERROR' | 'CROSS_NAMESPACE' | 'UNAVAILABLE';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

/** INCR on a value that is not a number: worded the same by every engine. */
export function incrWrongType(key: string, held: unknown): StoreError {
  return new StoreError(
    'WRONG_TYPE',
    `INCR needs a number, but ${JSON.stringify(key)} holds ${describe(held)}`,
  );
}

/** INCR whose result would leave the safe integers (or be no number at all). */
export function incrOverflow(key: string): StoreError {
  return new StoreError(
    'OVERFLOW',
    `INCR would take ${JSON.stringify(key)} beyond ±${Number.MAX_SAFE_INTEGER} (2^53 - 1); the value is unchanged`,
  );
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
