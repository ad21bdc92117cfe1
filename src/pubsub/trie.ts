/**
 * The subscription index: which entries' patterns match a channel (or key), at a cost that
 * depends on the channel's depth, not on how many subscriptions exist (NATS's sublist).
 *
 *   exact:  Map  "news^eu" -> {entries}          one lookup: the common case, no split
 *   trie:   root                                 wildcard patterns only, one node per segment
 *            ├─ "news" ─ ONE ─ (end: news^*)
 *            │         └ rest: news^>
 *            └─ ONE ─ "eu" ─ (end: *^eu)
 *
 * A publish does one Map lookup and, only while wildcard patterns exist, one walk that follows at
 * most two branches per segment (the literal child and `*`), collecting `>` sets on the way.
 * Nodes are pruned as their last entry leaves, so the index returns exactly to its earlier size
 * (`nodeCount`) after subscribers come and go.
 *
 * With `prefixQueries` (the key index), exact patterns are also threaded through the trie so that
 * `matchUnder` (DROP of a namespace) finds them without scanning the exact map.
 */
import { isReserved, ONE, REST, SEPARATOR, segmentsOf } from '../path.js';
import type { Pattern } from './pattern.js';

class Node<T> {
  children: Map<string, Node<T>> | undefined = undefined;
  one: Node<T> | undefined = undefined;
  /** Wildcard patterns that end at this node. */
  end: Set<T> | undefined = undefined;
  /** Exact patterns that end here (prefix-query mode only). */
  literal: Set<T> | undefined = undefined;
  /** Patterns whose `>` follows this node. */
  rest: Set<T> | undefined = undefined;

  isEmpty(): boolean {
    return (
      this.children === undefined &&
      this.one === undefined &&
      this.end === undefined &&
      this.literal === undefined &&
      this.rest === undefined
    );
  }
}

type SetField = 'end' | 'literal' | 'rest';

export interface IndexOptions {
  /** Wildcards at the first segment skip `$`-prefixed paths (channels). */
  reserved: boolean;
  /** Support `matchUnder` (the key index). */
  prefixQueries?: boolean;
}

export class SubscriptionIndex<T> {
  readonly #exact = new Map<string, Set<T>>();
  readonly #root = new Node<T>();
  readonly #reserved: boolean;
  readonly #prefix: boolean;
  #size = 0;
  #wildcards = 0;
  #nodes = 0;

  constructor(options: IndexOptions) {
    this.#reserved = options.reserved;
    this.#prefix = options.prefixQueries === true;
  }

  /** Entries in the index. */
  get size(): number {
    return this.#size;
  }

  /** Trie nodes plus exact-map keys: what `add` allocates and `remove` must give back. */
  get nodeCount(): number {
    return this.#nodes + this.#exact.size;
  }

  /** Adds an entry under a pattern; the caller guarantees it is not already there. */
  add(pattern: Pattern, entry: T): void {
    this.#size++;
    if (!pattern.wildcard) {
      let set = this.#exact.get(pattern.text);
      if (set === undefined) {
        set = new Set();
        this.#exact.set(pattern.text, set);
      }
      set.add(entry);
      if (!this.#prefix) return;
    } else {
      this.#wildcards++;
    }
    const segs = pattern.segments;
    let node = this.#root;
    const last = segs[segs.length - 1] === REST ? segs.length - 1 : segs.length;
    for (let i = 0; i < last; i++) node = this.#child(node, segs[i]!);
    const field: SetField = last < segs.length ? 'rest' : pattern.wildcard ? 'end' : 'literal';
    node[field] ??= new Set();
    node[field].add(entry);
  }

  /** Removes an entry; returns whether it was there. */
  remove(pattern: Pattern, entry: T): boolean {
    if (!pattern.wildcard) {
      const set = this.#exact.get(pattern.text);
      if (set === undefined || !set.delete(entry)) return false;
      if (set.size === 0) this.#exact.delete(pattern.text);
      this.#size--;
      if (!this.#prefix) return true;
    }
    const segs = pattern.segments;
    const last = segs[segs.length - 1] === REST ? segs.length - 1 : segs.length;
    const path: Node<T>[] = [this.#root];
    let node: Node<T> | undefined = this.#root;
    for (let i = 0; i < last && node !== undefined; i++) {
      const seg = segs[i]!;
      node = seg === ONE ? node.one : node.children?.get(seg);
      if (node !== undefined) path.push(node);
    }
    if (node === undefined) return false;
    const field: SetField = last < segs.length ? 'rest' : pattern.wildcard ? 'end' : 'literal';
    const set = node[field];
    if (set === undefined || !set.delete(entry)) return false;
    if (set.size === 0) node[field] = undefined;
    if (pattern.wildcard) {
      this.#size--;
      this.#wildcards--;
    }
    // Prune from the leaf up while nodes are empty.
    for (let i = path.length - 1; i > 0; i--) {
      const child = path[i]!;
      if (!child.isEmpty()) break;
      const parent = path[i - 1]!;
      const seg = segs[i - 1]!;
      if (seg === ONE) parent.one = undefined;
      else {
        parent.children!.delete(seg);
        if (parent.children!.size === 0) parent.children = undefined;
      }
      this.#nodes--;
    }
    return true;
  }

  /**
   * Appends to `out` every entry whose pattern matches the canonical `path`. An entry appears once
   * per matching pattern; patterns are distinct per entry, so an entry appears at most once.
   */
  match(path: string, out: T[]): void {
    const exact = this.#exact.get(path);
    if (exact !== undefined) for (const entry of exact) out.push(entry);
    if (this.#wildcards === 0) return;
    const segs = path.split(SEPARATOR);
    const root = this.#root;
    if (this.#reserved && isReserved(path)) {
      // Only a literal first segment may lead into a reserved channel.
      const child = root.children?.get(segs[0]!);
      if (child !== undefined) walk(child, segs, 1, out);
      return;
    }
    walk(root, segs, 0, out);
  }

  /**
   * Appends every entry whose pattern could match some path strictly below the canonical
   * `namespace` (`''` is the root): whom a DROP of that namespace concerns. Needs `prefixQueries`.
   */
  matchUnder(namespace: string, out: T[]): void {
    if (!this.#prefix) throw new Error('matchUnder needs an index built with prefixQueries');
    if (this.#size === 0) return;
    walkPrefix(this.#root, segmentsOf(namespace), 0, out);
  }

  #child(node: Node<T>, seg: string): Node<T> {
    if (seg === ONE) {
      if (node.one === undefined) {
        node.one = new Node();
        this.#nodes++;
      }
      return node.one;
    }
    node.children ??= new Map();
    let child = node.children.get(seg);
    if (child === undefined) {
      child = new Node();
      node.children.set(seg, child);
      this.#nodes++;
    }
    return child;
  }
}

function pushAll<T>(set: Set<T> | undefined, out: T[]): void {
  if (set !== undefined) for (const entry of set) out.push(entry);
}

/** Wildcard matches of `segs[i..]` below `node` (exact patterns come from the map). */
function walk<T>(node: Node<T>, segs: readonly string[], i: number, out: T[]): void {
  if (i === segs.length) {
    pushAll(node.end, out);
    return;
  }
  // `>` needs at least one more segment, and there is one.
  pushAll(node.rest, out);
  const child = node.children?.get(segs[i]!);
  if (child !== undefined) walk(child, segs, i + 1, out);
  if (node.one !== undefined) walk(node.one, segs, i + 1, out);
}

function walkPrefix<T>(node: Node<T>, ns: readonly string[], i: number, out: T[]): void {
  // A `>` here covers every path with more segments, and every path below `ns` has more.
  pushAll(node.rest, out);
  if (i === ns.length) {
    // Anything longer than the namespace can match some key below it; patterns ending here
    // (the namespace's own path) cannot.
    if (node.children !== undefined) for (const child of node.children.values()) collect(child, out);
    if (node.one !== undefined) collect(node.one, out);
    return;
  }
  const child = node.children?.get(ns[i]!);
  if (child !== undefined) walkPrefix(child, ns, i + 1, out);
  if (node.one !== undefined) walkPrefix(node.one, ns, i + 1, out);
}

function collect<T>(node: Node<T>, out: T[]): void {
  pushAll(node.end, out);
  pushAll(node.literal, out);
  pushAll(node.rest, out);
  if (node.children !== undefined) for (const child of node.children.values()) collect(child, out);
  if (node.one !== undefined) collect(node.one, out);
}
