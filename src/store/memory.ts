/**
 * MemoryStore: the in-memory engine. Synchronous (no promise per request) except when a listing
 * first has to reclaim a large backlog of expired keys, which it does in chunks before answering.
 * While such an answer is pending every later call queues behind it, so operations always take
 * effect in call order, as the Store contract requires of every engine.
 *
 * Expiry, in three parts that together keep every answer exact:
 * - lazy: every read or write of a key checks its TTL first and expires it on the spot;
 * - active: a timer (unref'd) pops due keys from the expiry queue within `sweepBudgetMs` per tick,
 *   so keys nobody touches are reclaimed too;
 * - settle: KEYS, NAMESPACES, COUNT and DROP first drain every due key, so counts and pages never
 *   include an expired key. Normally nothing is due and this is one comparison; a backlog larger
 *   than one budget is drained over several event-loop turns and the answer comes as a promise.
 * A key expires when `now() >= expiresAt`: set with ttl 100 at t=0, it is gone at t=100, and TTL
 * never answers 0.
 *
 * DROP detaches the subtree in O(depth) and answers at once; the garbage collector reclaims the
 * values. Only the expiry queue still points into the dropped subtree (one entry per namespace with
 * TTL'd keys, not per key), and a background task removes those in budgeted chunks; the sweep
 * meanwhile discards any it meets.
 */
import { performance } from 'node:perf_hooks';
import { ExpiryQueue, KeyExpiry } from './expiry.js';
import { jsonTextEqual } from './json-equal.js';
import type {
  ChangeListener,
  ChangeOp,
  JsonText,
  MaybePromise,
  Page,
  SetOptions,
  Store,
  StoreStats,
} from './store.js';
import { incrOverflow, incrWrongType } from './store.js';
import { NamespaceTree, type NsNode, pageOf } from './tree.js';

/** The slice of a pino logger the store uses. */
export interface StoreLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * What a durable engine hears from the in-memory one: every change as its resulting state, in the
 * order the changes take effect, so a log of these calls replays idempotently. Expiry times are
 * absolute (ms on the store's clock). Keys that expire are not reported: their records already
 * say when they go. MSET is one call (replayed all or nothing).
 */
export interface Journal {
  /** `key` now holds `value`, expiring at `expiresAt` or never (undefined). */
  set(key: string, value: JsonText, expiresAt: number | undefined): void;
  del(key: string): void;
  /** The namespace and its subtree are gone (`''`: everything). */
  drop(namespace: string): void;
  /** Every entry written, none with a TTL. */
  mset(entries: readonly (readonly [string, JsonText])[]): void;
  expire(key: string, expiresAt: number): void;
  persist(key: string): void;
}

/** Called for each live key by a snapshot walk (see `MemoryStore.snapshot`). */
export type SnapshotVisitor = (key: string, value: JsonText, expiresAt: number | undefined) => void;

/**
 * A walk over every key that runs in chunks while the store keeps changing. What it reports is
 * not one instant's state: a key changed during the walk may be reported with its old or new
 * value (or, when dropped meanwhile, still be reported). A log rewrite is still exact, because
 * every such change is also in the log written after the walk began, which replays on top.
 * A key untouched during the walk is reported exactly once.
 */
export interface SnapshotCursor {
  /** Reports up to `maxKeys` keys; false once the walk is complete. */
  next(visit: SnapshotVisitor, maxKeys: number): boolean;
}

export interface MemoryStoreOptions {
  /** The clock TTLs are measured against, in ms (tests pass a fake one). Default: Date.now. */
  now?: () => number;
  /** How often the active sweep looks for due keys. Default 100 ms. */
  sweepIntervalMs?: number;
  /** Most time one sweep tick, settle step or drop-cleanup step may hold the loop. Default 5 ms. */
  sweepBudgetMs?: number;
  logger?: StoreLogger;
}

const DEFAULT_SWEEP_INTERVAL_MS = 100;
// 5 ms per 100 ms tick caps the sweep at 5% of one core while still reclaiming ~1M keys/s when a
// backlog is drained chunk after chunk (measured by bench/store-memory.ts).
const DEFAULT_SWEEP_BUDGET_MS = 5;
// Checking the real clock costs ~25 ns; doing it every 64 units keeps a chunk within its budget.
const CLOCK_CHECK_MASK = 63;
/** SETs gathered during a replay before they are applied, grouped by namespace (see restoreSet). */
const RUN = 65_536;

function checkTtl(ttl: number): void {
  if (!(ttl > 0) || !Number.isFinite(ttl)) {
    throw new RangeError(`ttl must be a finite number of milliseconds > 0 (got ${ttl})`);
  }
}

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`limit must be an integer >= 1 (got ${limit})`);
}

export class MemoryStore implements Store {
  private readonly tree = new NamespaceTree();
  private readonly queue = new ExpiryQueue<NsNode>();
  private readonly now: () => number;
  private readonly sweepIntervalMs: number;
  private readonly budgetMs: number;
  private readonly logger: StoreLogger | undefined;
  private listener: ChangeListener | null = null;
  private journal: Journal | null = null;
  private expiredTotal = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  // The walk over dropped subtrees (see scheduleCleanup): one iterator over children per level.
  private readonly cleanupStack: Iterator<NsNode>[] = [];
  private cleanupTimer: NodeJS.Immediate | undefined;
  private indexTimer: NodeJS.Immediate | undefined;
  private closed = false;
  /** The last deferred operation while any is pending (see `after`); null on the synchronous path. */
  private tail: Promise<void> | null = null;
  private replaying = false;

  /**
   * True while a deferred answer is pending and this call is not one being replayed from the
   * queue: every operation then goes through `after`, so none overtakes an earlier one.
   */
  private get queued(): boolean {
    return this.tail !== null && !this.replaying;
  }

  constructor(options: MemoryStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    this.sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    this.budgetMs = options.sweepBudgetMs ?? DEFAULT_SWEEP_BUDGET_MS;
    this.logger = options.logger;
  }

  // ---- reads ------------------------------------------------------------------------------------

  get(key: string): MaybePromise<JsonText | undefined> {
    if (this.queued) return this.after(() => this.get(key));
    return this.getNow(key);
  }

  private getNow(key: string): JsonText | undefined {
    const node = this.tree.nodeOfKey(key);
    if (node === undefined || node.values === undefined) return undefined;
    const value = node.values.get(key);
    if (value === undefined || (node.expiry !== undefined && this.expireIfDue(node, key))) return undefined;
    return value;
  }

  exists(key: string): MaybePromise<boolean> {
    if (this.queued) return this.after(() => this.exists(key));
    return this.liveNode(key) !== undefined;
  }

  mget(keys: readonly string[]): MaybePromise<(JsonText | undefined)[]> {
    if (this.queued) return this.after(() => this.mget(keys));
    const values = new Array<JsonText | undefined>(keys.length);
    for (let i = 0; i < keys.length; i++) values[i] = this.getNow(keys[i]!);
    return values;
  }

  ttl(key: string): MaybePromise<number | null | undefined> {
    if (this.queued) return this.after(() => this.ttl(key));
    const node = this.liveNode(key);
    if (node === undefined) return undefined;
    const expiresAt = node.expiry?.timeOf(key);
    return expiresAt === undefined ? null : expiresAt - this.now();
  }

  keys(namespace: string, after: string | undefined, limit: number): MaybePromise<Page> {
    if (this.queued) return this.after(() => this.keys(namespace, after, limit));
    checkLimit(limit);
    return this.settled(() => {
      const node = this.tree.nodeAt(namespace);
      return node === undefined
        ? { names: [], next: null }
        : pageOf(this.tree.orderOf(node), node.prefix, after, limit);
    });
  }

  namespaces(namespace: string, after: string | undefined, limit: number): MaybePromise<Page> {
    if (this.queued) return this.after(() => this.namespaces(namespace, after, limit));
    checkLimit(limit);
    return this.settled(() => pageOf(this.tree.nodeAt(namespace)?.childOrder, '', after, limit));
  }

  count(namespace: string): MaybePromise<number> {
    if (this.queued) return this.after(() => this.count(namespace));
    return this.settled(() => this.tree.nodeAt(namespace)?.keys ?? 0);
  }

  /** O(1). `keys` may still include expired keys the sweep has not reached (as Redis's DBSIZE). */
  stats(): StoreStats {
    const root = this.tree.root;
    return {
      keys: root.keys,
      namespaces: root.namespaces,
      keysWithTtl: root.keysWithTtl,
      expired: this.expiredTotal,
    };
  }

  /**
   * Engine internals for tests: namespaces in the expiry queue, drop cleanup still running, entries
   * in the namespace index (live namespaces, plus dropped ones the cleanup has not reached).
   */
  engineStats(): {
    expiringNamespaces: number;
    dropCleanupPending: boolean;
    indexedNamespaces: number;
    keyIndexesPending: boolean;
  } {
    return {
      expiringNamespaces: this.queue.size,
      dropCleanupPending: this.cleanupStack.length > 0,
      indexedNamespaces: this.tree.indexedNamespaces,
      keyIndexesPending: this.tree.indexesPending,
    };
  }

  // ---- writes -----------------------------------------------------------------------------------

  set(key: string, value: JsonText, options?: SetOptions): MaybePromise<boolean> {
    if (this.queued) return this.after(() => this.set(key, value, options));
    return this.setNow(key, value, options, this.journal);
  }

  /** `journal` is null when the caller logs the change itself (MSET logs one record). */
  private setNow(
    key: string,
    value: JsonText,
    options: SetOptions | undefined,
    journal: Journal | null,
  ): boolean {
    if (options === undefined) {
      // The common SET: no options, and a namespace with no TTLs (so no expiry to check or clear).
      // One Map operation whether the key is new or not; the size tells which.
      const known = this.tree.nodeOfKey(key);
      const values = known?.values;
      if (values !== undefined && known!.expiry === undefined) {
        const size = values.size;
        values.set(key, value);
        if (values.size !== size) this.tree.inserted(known!, key);
        if (journal !== null) journal.set(key, value, undefined);
        if (this.listener !== null) this.emit('set', key, value);
        return true;
      }
    }
    let node = this.liveNode(key);
    if (options !== undefined) {
      if (options.ttl !== undefined) checkTtl(options.ttl);
      if (
        (options.ifAbsent === true && node !== undefined) ||
        (options.ifPresent === true && node === undefined)
      ) {
        return false;
      }
    }
    if (node === undefined) {
      node = this.tree.ensureNodeOfKey(key);
      this.tree.insert(node, key, value);
    } else {
      node.values!.set(key, value);
    }
    const ttl = options?.ttl;
    const expiresAt = ttl === undefined ? undefined : this.now() + ttl;
    if (expiresAt !== undefined) this.setExpiry(node, key, expiresAt);
    else if (node.expiry !== undefined) this.clearExpiry(node, key);
    if (journal !== null) journal.set(key, value, expiresAt);
    if (this.listener !== null) this.emit('set', key, value);
    return true;
  }

  del(key: string): MaybePromise<boolean> {
    if (this.queued) return this.after(() => this.del(key));
    const node = this.liveNode(key);
    if (node === undefined) return false;
    this.removeKey(node, key);
    if (this.journal !== null) this.journal.del(key);
    if (this.listener !== null) this.emit('del', key, undefined);
    return true;
  }

  incr(key: string, by: number): MaybePromise<number> {
    if (this.queued) return this.after(() => this.incr(key, by));
    const node = this.liveNode(key);
    let current = 0;
    if (node !== undefined) {
      const parsed: unknown = JSON.parse(node.values!.get(key)!);
      if (typeof parsed !== 'number') throw incrWrongType(key, parsed);
      current = parsed;
    }
    // `+ 0` turns -0 into 0, so the answer and the stored text agree.
    const result = current + by + 0;
    if (!Number.isFinite(result) || Math.abs(result) > Number.MAX_SAFE_INTEGER) throw incrOverflow(key);
    const text = String(result);
    if (node === undefined) this.tree.insert(this.tree.ensureNodeOfKey(key), key, text);
    else node.values!.set(key, text); // keeps its TTL
    if (this.journal !== null) this.journal.set(key, text, node?.expiry?.timeOf(key));
    if (this.listener !== null) this.emit('incr', key, text);
    return result;
  }

  cas(key: string, expected: JsonText, value: JsonText): MaybePromise<boolean> {
    if (this.queued) return this.after(() => this.cas(key, expected, value));
    const node = this.liveNode(key);
    if (node === undefined || !jsonTextEqual(node.values!.get(key)!, expected)) return false;
    node.values!.set(key, value);
    if (node.expiry !== undefined) this.clearExpiry(node, key);
    if (this.journal !== null) this.journal.set(key, value, undefined);
    if (this.listener !== null) this.emit('cas', key, value);
    return true;
  }

  /** Atomic: keys arrive validated and nothing below can fail, so every entry is written or none. */
  mset(entries: readonly (readonly [string, JsonText])[]): MaybePromise<void> {
    if (this.queued) return this.after(() => this.mset(entries));
    for (const [key, value] of entries) this.setNow(key, value, undefined, null);
    if (this.journal !== null) this.journal.mset(entries);
  }

  expire(key: string, ttl: number): MaybePromise<boolean> {
    if (this.queued) return this.after(() => this.expire(key, ttl));
    checkTtl(ttl);
    const node = this.liveNode(key);
    if (node === undefined) return false;
    const expiresAt = this.now() + ttl;
    this.setExpiry(node, key, expiresAt);
    if (this.journal !== null) this.journal.expire(key, expiresAt);
    return true;
  }

  persist(key: string): MaybePromise<boolean> {
    if (this.queued) return this.after(() => this.persist(key));
    const node = this.liveNode(key);
    if (node === undefined || node.expiry?.timeOf(key) === undefined) return false;
    this.clearExpiry(node, key);
    if (this.journal !== null) this.journal.persist(key);
    return true;
  }

  /**
   * Removes a namespace and everything below it; `''` (the root) empties the store. The wire layer
   * refuses the root for DROP (see keypath.ts); the engine allows it for an explicit FLUSHALL.
   */
  drop(namespace: string): MaybePromise<number> {
    if (this.queued) return this.after(() => this.drop(namespace));
    return this.settled(() => {
      const node = this.tree.nodeAt(namespace);
      if (node === undefined || node.keys === 0) return 0;
      this.tree.detach(node);
      if (node.namespaces > 0 || node.keysWithTtl > 0) this.scheduleCleanup(node);
      if (this.journal !== null) this.journal.drop(namespace);
      if (this.listener !== null) this.emit('drop', namespace, undefined);
      return node.keys;
    });
  }

  onChange(listener: ChangeListener | null): void {
    this.listener = listener;
  }

  /** At most one journal (a durable engine). Costs one comparison per write while unset. */
  setJournal(journal: Journal | null): void {
    this.journal = journal;
  }

  // ---- restore: replaying a log (no listener, no journal, always synchronous) -------------------

  // A key whose time has passed stays until the replay ends (`restoreDone`): a later record may
  // still refer to it (SET with a TTL, then PERSIST), as it did when the records were written.

  /**
   * Makes `key` hold `value`, expiring at `expiresAt` (absolute) or never. Consecutive SETs are
   * gathered (up to RUN of them) and applied one namespace at a time, each namespace's in log
   * order: SETs of different keys commute, and any other record applies the run first. A log
   * written in arrival order touches 1000 namespaces' Maps in turn; grouped, each Map is filled
   * while it is in cache (1M keys, half of them in an incremental log: ~60 ms of a ~1.65 s replay;
   * longer runs were slower, as the run's arrays then point at many young strings for the GC).
   */
  restoreSet(key: string, value: JsonText, expiresAt: number | undefined): void {
    const node = this.tree.nodeOfKey(key) ?? this.tree.ensureNodeOfKey(key);
    const run = this.run;
    if (run.length === RUN) this.applyRun();
    const i = run.length++;
    run.nodes[i] = node;
    run.keys[i] = key;
    run.values[i] = value;
    run.times[i] = expiresAt;
  }

  private run = {
    length: 0,
    nodes: [] as NsNode[],
    keys: [] as string[],
    values: [] as JsonText[],
    times: [] as (number | undefined)[],
  };

  private applyRun(): void {
    const { length, nodes, keys, values: values_, times } = this.run;
    if (length === 0) return;
    this.run.length = 0;
    const groups = new Map<NsNode, number[]>();
    for (let i = 0; i < length; i++) {
      const node = nodes[i]!;
      const group = groups.get(node);
      if (group === undefined) groups.set(node, [i]);
      else group.push(i);
    }
    for (const [node, group] of groups) {
      node.values ??= new Map();
      const values = node.values;
      let added = 0;
      let notes = this.ttlNotes.get(node);
      for (const i of group) {
        const key = keys[i]!;
        const expiresAt = times[i];
        // One Map write whether the key is new or not (the size tells).
        const size = values.size;
        values.set(key, values_[i]!);
        if (values.size !== size) {
          added++;
          if (expiresAt === undefined) continue;
        }
        // A TTL, or an overwrite: its TTL is this record's (none: NaN clears an earlier one).
        if (notes === undefined) notes = this.ttlNotesOf(node);
        notes.keys.push(key);
        notes.times.push(expiresAt ?? Number.NaN);
      }
      if (added > 0) this.tree.insertedDeferred(node, added);
    }
  }

  /**
   * During a replay, TTL changes are only noted, per namespace and in order (NaN: no TTL); the
   * heaps are built from the notes when the replay ends, one namespace at a time. Filling 1000
   * namespaces' TTL maps in the log's interleaved order cost ~1 s more for 1M keys (cache misses).
   */
  private ttlEvent(node: NsNode, key: string, expiresAt: number): void {
    const notes = this.ttlNotesOf(node);
    notes.keys.push(key);
    notes.times.push(expiresAt);
  }

  private ttlNotesOf(node: NsNode): { keys: string[]; times: number[] } {
    let notes = this.ttlNotes.get(node);
    if (notes === undefined) {
      notes = { keys: [], times: [] };
      this.ttlNotes.set(node, notes);
    }
    return notes;
  }

  private ttlNotes = new Map<NsNode, { keys: string[]; times: number[] }>();

  restoreDel(key: string): void {
    this.applyRun();
    const node = this.tree.nodeOfKey(key);
    if (node?.values?.has(key) !== true) return;
    this.tree.remove(node, key);
    this.ttlEvent(node, key, Number.NaN);
  }

  restoreDrop(namespace: string): void {
    this.applyRun();
    const node = this.tree.nodeAt(namespace);
    if (node === undefined || node.keys === 0) return;
    this.tree.detach(node);
    if (node.namespaces > 0) this.scheduleCleanup(node);
  }

  restoreExpire(key: string, expiresAt: number): void {
    this.applyRun();
    const node = this.tree.nodeOfKey(key);
    if (node?.values?.has(key) === true) this.ttlEvent(node, key, expiresAt);
  }

  restorePersist(key: string): void {
    this.applyRun();
    const node = this.tree.nodeOfKey(key);
    if (node?.values?.has(key) === true) this.ttlEvent(node, key, Number.NaN);
  }

  /** Starts a replay (of an empty store): the restore* calls above, then restoreDone. */
  restoreBegin(): void {
    this.tree.deferOrder();
  }

  /**
   * Ends a replay: each namespace's TTL heap is built from its notes in one pass, the keys whose
   * time passed while the server was down leave silently (before the key indexes are built, so no
   * index is updated for them), then the key indexes are built. A restart after 1M TTLs had
   * passed took 9.2 s removing keys one by one; ~2 s this way.
   */
  restoreDone(): void {
    this.applyRun();
    this.run = { length: 0, nodes: [], keys: [], values: [], times: [] };
    const now = this.now();
    const notes = this.ttlNotes;
    this.ttlNotes = new Map();
    for (const [node, { keys, times }] of notes) {
      // Dropped or emptied during the replay: its notes no longer matter.
      if (node.values === undefined || !this.tree.isLive(node)) continue;
      const expiry = new KeyExpiry();
      for (let i = 0; i < keys.length; i++) {
        const time = times[i]!;
        if (!Number.isNaN(time)) expiry.setUnordered(keys[i]!, time);
        else expiry.delete(keys[i]!);
      }
      for (const key of expiry.removeDue(now)) this.tree.remove(node, key);
      if (expiry.size === 0 || !this.tree.isLive(node)) continue;
      node.expiry = expiry;
      this.tree.countTtl(node, expiry.size);
      this.queue.update(node);
    }
    if (this.queue.size > 0) this.startSweep();
    this.tree.endDeferOrder();
    this.buildIndexesSoon();
  }

  /**
   * Builds the sorted key indexes a replay left unbuilt, a budgeted chunk per loop turn, so the
   * server answers meanwhile (a listing builds the one it needs first: NamespaceTree.orderOf).
   * One namespace is built whole: one of a million keys holds the loop for ~250 ms, once.
   */
  private buildIndexesSoon(): void {
    if (this.indexTimer !== undefined || this.closed || !this.tree.indexesPending) return;
    this.indexTimer = setImmediate(() => {
      this.indexTimer = undefined;
      if (this.tree.buildSome(performance.now() + this.budgetMs)) this.buildIndexesSoon();
    }).unref();
  }

  /** A chunked walk over every key (see SnapshotCursor); keys already due are skipped. */
  snapshot(): SnapshotCursor {
    // One frame per level: the node's own keys first, then its children. Map iterators stay valid
    // while the Map changes (entries added meanwhile are visited, deleted ones are not).
    // Keys, then a get: an entries() iterator makes a [key, value] array per key (GC work).
    const stack: {
      node: NsNode;
      values: Iterator<string> | null;
      children: Iterator<NsNode> | null;
    }[] = [{ node: this.tree.root, values: null, children: null }];
    let started = false;
    return {
      next: (visit, maxKeys) => {
        if (!started) {
          started = true;
          const root = stack[0]!;
          root.values = root.node.values?.keys() ?? null;
          root.children = root.node.children?.values() ?? null;
        }
        const now = this.now();
        let n = 0;
        while (stack.length > 0) {
          const frame = stack[stack.length - 1]!;
          if (frame.values !== null) {
            const entry = frame.values.next();
            if (entry.done === true) {
              frame.values = null;
              continue;
            }
            const key = entry.value;
            const value = frame.node.values?.get(key);
            const expiresAt = frame.node.expiry?.timeOf(key);
            // No value: removed since (or the namespace emptied); the log after the walk has it.
            if (value !== undefined && (expiresAt === undefined || expiresAt > now)) {
              visit(key, value, expiresAt);
              if (++n >= maxKeys) return true;
            }
            continue;
          }
          const child = frame.children?.next();
          if (child === undefined || child.done === true) {
            stack.pop();
            continue;
          }
          const node = child.value;
          stack.push({
            node,
            values: node.values?.keys() ?? null,
            children: node.children?.values() ?? null,
          });
        }
        return false;
      },
    };
  }

  close(): void {
    this.closed = true;
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    if (this.cleanupTimer !== undefined) clearImmediate(this.cleanupTimer);
    if (this.indexTimer !== undefined) clearImmediate(this.indexTimer);
    this.sweepTimer = undefined;
    this.cleanupTimer = undefined;
    this.indexTimer = undefined;
  }

  // ---- key bookkeeping --------------------------------------------------------------------------

  /** The node holding `key` when the key exists and has not expired (expiring it if due). */
  private liveNode(key: string): NsNode | undefined {
    const node = this.tree.nodeOfKey(key);
    if (node === undefined || node.values?.has(key) !== true) return undefined;
    if (node.expiry !== undefined && this.expireIfDue(node, key)) return undefined;
    return node;
  }

  /** Lazy expiry: true when `key` (present in `node`) was due and has just been removed. */
  private expireIfDue(node: NsNode, key: string): boolean {
    const expiresAt = node.expiry!.timeOf(key);
    if (expiresAt === undefined || expiresAt > this.now()) return false;
    this.removeKey(node, key);
    this.expiredTotal++;
    if (this.listener !== null) this.emit('expire', key, undefined);
    return true;
  }

  private removeKey(node: NsNode, key: string): void {
    if (node.expiry !== undefined) this.clearExpiry(node, key);
    this.tree.remove(node, key);
  }

  private setExpiry(node: NsNode, key: string, expiresAt: number): void {
    node.expiry ??= new KeyExpiry();
    const earliest = node.expiry.peekTime();
    if (node.expiry.set(key, expiresAt)) {
      this.tree.countTtl(node, 1);
      this.startSweep();
    }
    if (node.expiry.peekTime() !== earliest) this.queue.update(node);
  }

  /** Removes the TTL of `key`, if it has one. */
  private clearExpiry(node: NsNode, key: string): void {
    const expiry = node.expiry!;
    const earliest = expiry.peekTime();
    if (!expiry.delete(key)) return;
    this.tree.countTtl(node, -1);
    if (expiry.size === 0) {
      node.expiry = undefined;
      this.queue.remove(node);
    } else if (expiry.peekTime() !== earliest) {
      this.queue.update(node);
    }
  }

  private emit(op: ChangeOp, key: string, value: JsonText | undefined): void {
    try {
      this.listener!(op, key, value);
    } catch (err) {
      // The change already happened; a faulty listener must not turn a done write into an error.
      this.logger?.warn({ err, op, key }, 'store change listener threw');
    }
  }

  // ---- expiry: sweep and settle -----------------------------------------------------------------

  /**
   * Expires due keys in time order until none is due at `now` (true) or the real-time `deadline`
   * passes (false). A dropped namespace met here leaves the queue silently: DROP told listeners.
   */
  private drainDue(now: number, deadline: number): boolean {
    const queue = this.queue;
    let steps = 0;
    while (queue.peekTime() <= now) {
      if ((++steps & CLOCK_CHECK_MASK) === 0 && performance.now() > deadline) return false;
      const node = queue.peek();
      // expireIfDue re-files a live node; a dropped one (or, defensively, a stuck entry) leaves here.
      if (!this.tree.isLive(node) || !this.expireIfDue(node, node.expiry!.peekKey())) queue.remove(node);
    }
    return true;
  }

  /**
   * Runs `answer` once no expired key is left, so listings and counts are exact. Synchronous unless
   * a backlog takes more than one budget to drain; then it is drained across loop turns.
   */
  private settled<T>(answer: () => T): MaybePromise<T> {
    if (this.queue.peekTime() > this.now() || this.drainDue(this.now(), performance.now() + this.budgetMs)) {
      return answer();
    }
    const answered = new Promise<T>((resolve, reject) => {
      const step = (): void => {
        try {
          if (this.drainDue(this.now(), performance.now() + this.budgetMs)) resolve(answer());
          else setImmediate(step);
        } catch (err) {
          reject(err);
        }
      };
      setImmediate(step);
    });
    // Calls made meanwhile wait behind this answer (a queued call is already behind it).
    if (!this.replaying) this.setTail(answered);
    return answered;
  }

  /**
   * Runs `op` once every earlier operation has answered. Only used while a deferred answer is
   * pending: the store then behaves as a queue, so a call can never take effect before one made
   * earlier (a SET pipelined after a DROP must not be dropped by it).
   */
  private after<T>(op: () => MaybePromise<T>): Promise<T> {
    const run = (): MaybePromise<T> => {
      this.replaying = true;
      try {
        return op();
      } finally {
        this.replaying = false;
      }
    };
    const result = this.tail!.then(run);
    this.setTail(result);
    return result;
  }

  private setTail(last: Promise<unknown>): void {
    const tail: Promise<void> = last.then(ignore, ignore);
    this.tail = tail;
    void tail.then(() => {
      if (this.tail === tail) this.tail = null;
    });
  }

  private startSweep(): void {
    if (this.sweepTimer !== undefined || this.closed) return;
    this.sweepTimer = setInterval(() => this.sweep(), this.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    if (this.queue.size === 0) {
      // Nothing can expire: stop ticking until the next TTL is set.
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
      return;
    }
    const before = this.expiredTotal;
    if (!this.drainDue(this.now(), performance.now() + this.budgetMs)) {
      this.logger?.debug(
        { expired: this.expiredTotal - before, due: 'more' },
        'expiry sweep used its budget',
      );
    }
  }

  // ---- drop cleanup -----------------------------------------------------------------------------

  /**
   * Takes a dropped subtree's namespaces out of the expiry queue and the tree's namespace index, a
   * budgeted chunk per loop turn. The walk holds one iterator per level, so a namespace with a
   * million children is walked in chunks too.
   */
  private scheduleCleanup(node: NsNode): void {
    this.queue.remove(node);
    if (node.children !== undefined) this.cleanupStack.push(node.children.values());
    if (this.cleanupTimer === undefined && !this.closed && this.cleanupStack.length > 0) {
      this.cleanupTimer = setImmediate(() => this.runCleanup()).unref();
    }
  }

  private runCleanup(): void {
    this.cleanupTimer = undefined;
    const deadline = performance.now() + this.budgetMs;
    const stack = this.cleanupStack;
    let steps = 0;
    while (stack.length > 0) {
      const next = stack[stack.length - 1]!.next();
      if (next.done === true) {
        stack.pop();
        continue;
      }
      const node = next.value;
      this.queue.remove(node);
      this.tree.forgetDetached(node);
      if (node.children !== undefined) stack.push(node.children.values());
      if ((++steps & CLOCK_CHECK_MASK) === 0 && performance.now() > deadline) break;
    }
    if (stack.length > 0 && !this.closed) {
      this.cleanupTimer = setImmediate(() => this.runCleanup()).unref();
    }
  }
}

function ignore(): void {}
