/**
 * The namespace tree (MUMPS globals): one node per namespace, each holding its own keys and knowing
 * the totals of its whole subtree, so COUNT is O(1), DROP detaches a subtree in O(depth), and
 * listings page through sorted indexes in O(log n + limit).
 *
 * Memory layout, chosen for the 1M-key target (see bench/store-memory.ts):
 * - a node's values live in a Map keyed by the *full* canonical key (the string the caller already
 *   holds), and its sorted index (a B+ tree) holds the very same string, so a key costs one string,
 *   one Map entry and one B+ tree slot; within one node all keys share the node's prefix, so ordering
 *   full keys orders their names;
 * - every per-node container is created on first use: a namespace with only sub-namespaces carries
 *   no value map, and a key without a TTL carries nothing at all for expiry.
 * A node whose subtree holds no key is removed at once: a namespace exists only while it has keys.
 *
 * Finding a key's namespace takes one lookup, not one per segment: `index` maps the path of every
 * live namespace to its node (one Map entry per namespace, not per key). DROP keeps its O(depth):
 * `detach` removes only the dropped node's own entry and counts its descendants as `unswept`; the
 * store's background cleanup walks the detached subtree and hands each descendant to
 * `forgetDetached`. While any are unswept an index hit is checked for liveness (O(depth)); the rest
 * of the time it is trusted as is.
 */

import sortedBtree from 'sorted-btree';
import { SEPARATOR } from '../path.js';
import type { ExpiryOwner, KeyExpiry } from './expiry.js';
import type { JsonText, Page } from './store.js';

// sorted-btree is CommonJS with `exports.default`: Node's ESM loader hands over module.exports (the
// class under `.default`), while Vite (vitest) unwraps it to the class itself.
type BTreeClass = typeof sortedBtree.default;
const BTree: BTreeClass =
  (sortedBtree as { default?: BTreeClass }).default ?? (sortedBtree as unknown as BTreeClass);
type SortedIndex = InstanceType<typeof BTree<string, undefined>>;

const CARET = 0x5e;

/** UTF-16 code-unit order, as `Array.prototype.sort` and the Store contract define it. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function newIndex(): SortedIndex {
  return new BTree<string, undefined>(undefined, compareStrings);
}

export class NsNode implements ExpiryOwner {
  /** null once detached (dropped or pruned); only the live root also has no parent. */
  parent: NsNode | null;
  /** Keys in the whole subtree. */
  keys = 0;
  /** Keys with a TTL in the whole subtree. */
  keysWithTtl = 0;
  /** Namespaces below this one. */
  namespaces = 0;
  /** This namespace's own keys: full key -> JSON text. */
  values: Map<string, JsonText> | undefined;
  /** This namespace's own keys (full keys), sorted. */
  order: SortedIndex | undefined;
  /** This namespace's own TTL'd keys (see expiry.ts). */
  expiry: KeyExpiry | undefined;
  expirySlot = -1;
  children: Map<string, NsNode> | undefined;
  /** Child names, sorted. */
  childOrder: SortedIndex | undefined;

  constructor(
    parent: NsNode | null,
    /** Last segment ('' for the root). */
    readonly name: string,
    /** Canonical namespace path ('' for the root). */
    readonly path: string,
  ) {
    this.parent = parent;
  }

  /** What every key directly in this namespace starts with. */
  get prefix(): string {
    return this.path === '' ? '' : `${this.path}^`;
  }
}

export class NamespaceTree {
  root = new NsNode(null, '', '');
  /** Canonical path -> node, for every live namespace but the root (and detached ones not yet swept). */
  private index = new Map<string, NsNode>();
  /** Nodes of detached subtrees whose index entries `forgetDetached` has not seen yet. */
  private unswept = 0;

  /** Entries in the namespace index (for tests: it must shrink back once a DROP's cleanup is done). */
  get indexedNamespaces(): number {
    return this.index.size;
  }

  /**
   * Namespaces whose sorted key index is not built yet, after a log replay; null normally. A
   * replay inserts keys in log order; sorting each namespace once and building its index in order
   * was 5x faster than keeping 1000 indexes up to date (1M keys: 805 -> 160 ms), and building
   * them after the server is ready, a chunk per turn or when a listing needs one first, takes
   * that time (~200-300 ms for 1M keys here) out of the restart.
   */
  private unsorted: Set<NsNode> | null = null;
  /** Between deferOrder and endDeferOrder: every insert joins `unsorted`. */
  private replaying = false;

  /** From now until `endDeferOrder`, inserts skip the sorted key index (a replay). */
  deferOrder(): void {
    this.unsorted ??= new Set();
    this.replaying = true;
  }

  /** Ends a replay: the indexes still missing are built by `buildSome` or on first use (`orderOf`). */
  endDeferOrder(): void {
    this.replaying = false;
    if (this.unsorted?.size === 0) this.unsorted = null;
  }

  /** Whether some key indexes are still to build (see `buildSome`). */
  get indexesPending(): boolean {
    return this.unsorted !== null && !this.replaying;
  }

  /** Builds missing key indexes until `deadline` (performance.now() ms); true when some remain. */
  buildSome(deadline: number): boolean {
    const unsorted = this.unsorted;
    if (unsorted === null || this.replaying) return false;
    for (const node of unsorted) {
      this.buildOrder(node);
      if (performance.now() > deadline) break;
    }
    return this.unsorted !== null;
  }

  /** `node`'s sorted key index, built now if a replay left it unbuilt. */
  orderOf(node: NsNode): SortedIndex | undefined {
    if (this.unsorted?.has(node) === true && !this.replaying) this.buildOrder(node);
    return node.order;
  }

  private buildOrder(node: NsNode): void {
    const unsorted = this.unsorted!;
    unsorted.delete(node);
    if (unsorted.size === 0) this.unsorted = null;
    if (node.values === undefined) {
      node.order = undefined;
      return;
    }
    // Array.prototype.sort without a comparator orders by UTF-16 code units, as compareStrings.
    const keys = [...node.values.keys()].sort();
    const order = newIndex();
    for (const key of keys) order.set(key, undefined);
    node.order = order;
  }

  /** The node that holds `key` (a canonical key), if its namespace exists. */
  nodeOfKey(key: string): NsNode | undefined {
    // A loop from the end, not lastIndexOf: that is a call into the runtime, which showed in the
    // server's profile (~1%), and a key's last segment is short.
    let i = key.length - 1;
    while (i >= 0 && key.charCodeAt(i) !== CARET) i--;
    return i === -1 ? this.root : this.indexed(key.slice(0, i));
  }

  /** The node of a canonical namespace path ('' is the root), if it exists. */
  nodeAt(path: string): NsNode | undefined {
    return path === '' ? this.root : this.indexed(path);
  }

  private indexed(path: string): NsNode | undefined {
    const node = this.index.get(path);
    // An entry left by a DROP whose cleanup is still running may point into the detached subtree.
    if (node === undefined || (this.unswept !== 0 && !this.isLive(node))) return undefined;
    return node;
  }

  /**
   * A descendant of a detached subtree (DROP), met by the store's cleanup walk: its index entry
   * goes unless the namespace has been created afresh since. Call once per descendant.
   */
  forgetDetached(node: NsNode): void {
    if (this.index.get(node.path) === node) this.index.delete(node.path);
    this.unswept--;
  }

  /** The node that will hold `key`, creating missing namespaces on the way. */
  ensureNodeOfKey(key: string): NsNode {
    const known = this.nodeOfKey(key);
    if (known !== undefined) return known;
    let node = this.root;
    let start = 0;
    for (let i = key.indexOf(SEPARATOR); i !== -1; i = key.indexOf(SEPARATOR, start)) {
      const name = key.slice(start, i);
      let child = node.children?.get(name);
      if (child === undefined) child = this.addChild(node, name, key.slice(0, i));
      node = child;
      start = i + 1;
    }
    return node;
  }

  private addChild(parent: NsNode, name: string, path: string): NsNode {
    const child = new NsNode(parent, name, path);
    parent.children ??= new Map();
    parent.childOrder ??= newIndex();
    parent.children.set(name, child);
    parent.childOrder.set(name, undefined);
    this.index.set(path, child);
    for (let n: NsNode | null = parent; n !== null; n = n.parent) n.namespaces++;
    return child;
  }

  /** Adds a key that is not in `node` yet. */
  insert(node: NsNode, key: string, value: JsonText): void {
    node.values ??= new Map();
    node.values.set(key, value);
    this.inserted(node, key);
  }

  /** Bookkeeping for a key just added to `node.values` (the caller did the `set`). */
  inserted(node: NsNode, key: string): void {
    const unsorted = this.unsorted;
    if (unsorted === null || (!this.replaying && !unsorted.has(node))) {
      node.order ??= newIndex();
      node.order.set(key, undefined);
    } else {
      // Its index is built from its keys later (see `unsorted`).
      unsorted.add(node);
    }
    for (let n: NsNode | null = node; n !== null; n = n.parent) n.keys++;
  }

  /** `inserted` for `count` keys at once, while the key indexes wait (see deferOrder). */
  insertedDeferred(node: NsNode, count: number): void {
    this.unsorted!.add(node);
    for (let n: NsNode | null = node; n !== null; n = n.parent) n.keys += count;
  }

  /** Removes a key that is in `node` (its TTL must already be gone); prunes emptied namespaces. */
  remove(node: NsNode, key: string): void {
    const values = node.values!;
    values.delete(key);
    if (values.size === 0) {
      node.values = undefined;
      node.order = undefined;
    } else {
      node.order?.delete(key); // none while unsorted (see deferOrder)
    }
    for (let n: NsNode | null = node; n !== null; n = n.parent) n.keys--;
    this.prune(node);
  }

  /** Counts TTLs added (> 0) or removed (< 0) in the subtree totals. */
  countTtl(node: NsNode, delta: number): void {
    for (let n: NsNode | null = node; n !== null; n = n.parent) n.keysWithTtl += delta;
  }

  /**
   * Cuts `node` and its subtree out of the tree in O(depth) and returns it; the caller cleans up
   * whatever outside bookkeeping still points into it, passing every node below `node` to
   * `forgetDetached`. Dropping the root swaps in a fresh root and index.
   */
  detach(node: NsNode): NsNode {
    if (node === this.root) {
      this.root = new NsNode(null, '', '');
      this.index = new Map();
      this.unswept += node.namespaces;
      return node;
    }
    this.index.delete(node.path);
    this.unswept += node.namespaces;
    const parent = node.parent!;
    parent.children!.delete(node.name);
    parent.childOrder!.delete(node.name);
    if (parent.children!.size === 0) {
      parent.children = undefined;
      parent.childOrder = undefined;
    }
    node.parent = null;
    for (let n: NsNode | null = parent; n !== null; n = n.parent) {
      n.keys -= node.keys;
      n.keysWithTtl -= node.keysWithTtl;
      n.namespaces -= node.namespaces + 1;
    }
    this.prune(parent);
    return node;
  }

  /** Whether `node` is still reachable from the root (not dropped or pruned). O(depth). */
  isLive(node: NsNode): boolean {
    while (node.parent !== null) node = node.parent;
    return node === this.root;
  }

  private prune(node: NsNode): void {
    // A namespace lives only while its subtree has keys; detach() prunes the parent in turn.
    if (node.keys === 0 && node !== this.root) this.detach(node);
  }
}

/**
 * One page of a sorted index: entries strictly after `after`, at most `limit`, names with the
 * first `prefixLength` characters cut. `next` is null exactly when nothing follows the page.
 */
export function pageOf(
  index: SortedIndex | undefined,
  prefix: string,
  after: string | undefined,
  limit: number,
): Page {
  const names: string[] = [];
  if (index === undefined) return { names, next: null };
  const start = after === undefined ? undefined : prefix + after;
  const cursor = index.keys(start);
  let entry = cursor.next();
  if (start !== undefined && !entry.done && entry.value === start) entry = cursor.next();
  while (!entry.done && names.length < limit) {
    names.push(prefix === '' ? entry.value : entry.value.slice(prefix.length));
    entry = cursor.next();
  }
  return { names, next: entry.done ? null : names[names.length - 1]! };
}
