/**
 * A growable ring buffer: O(1) push, shift and unshift however long it gets.
 *
 * The client keeps every in-flight request here, in send order, and pops the head for each
 * response. `Array.prototype.shift` is O(n) once V8 gives up on its fast path for large arrays, so
 * 10 000 pipelined requests would cost O(n^2) to drain; this never moves elements.
 *
 *     capacity 8, head = 5, length = 5
 *     index:  0   1   2   3   4   5   6   7
 *           [ d | e | . | . | . | a | b | c ]
 *                     ^ tail = (head + length) & mask
 *
 * Capacity is a power of two so that wrapping is a mask, not a modulo.
 */
export class RingQueue<T> {
  private items: (T | undefined)[];
  private head = 0;
  private mask: number;
  length = 0;

  constructor(initialCapacity = 16) {
    let capacity = 4;
    while (capacity < initialCapacity) capacity *= 2;
    this.items = new Array<T | undefined>(capacity);
    this.mask = capacity - 1;
  }

  push(item: T): void {
    if (this.length > this.mask) this.grow();
    this.items[(this.head + this.length) & this.mask] = item;
    this.length++;
  }

  /** Put an item back at the front (used to replay requests ahead of newer ones). */
  unshift(item: T): void {
    if (this.length > this.mask) this.grow();
    this.head = (this.head - 1) & this.mask;
    this.items[this.head] = item;
    this.length++;
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head];
    // Drop the reference so a settled request can be collected while the queue lives on.
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.length--;
    return item;
  }

  peek(): T | undefined {
    return this.length === 0 ? undefined : this.items[this.head];
  }

  /** The item `index` places behind the head, or undefined past the end. */
  at(index: number): T | undefined {
    if (index < 0 || index >= this.length) return undefined;
    return this.items[(this.head + index) & this.mask];
  }

  /** Remove and return the last item. */
  pop(): T | undefined {
    if (this.length === 0) return undefined;
    const i = (this.head + this.length - 1) & this.mask;
    const item = this.items[i];
    this.items[i] = undefined;
    this.length--;
    return item;
  }

  /** Empty the queue and hand back what it held, oldest first. */
  drain(): T[] {
    const out = new Array<T>(this.length);
    for (let i = 0; i < out.length; i++) out[i] = this.items[(this.head + i) & this.mask] as T;
    this.items.fill(undefined);
    this.head = 0;
    this.length = 0;
    return out;
  }

  private grow(): void {
    const old = this.items;
    const capacity = old.length * 2;
    const next = new Array<T | undefined>(capacity);
    for (let i = 0; i < this.length; i++) next[i] = old[(this.head + i) & this.mask];
    this.items = next;
    this.head = 0;
    this.mask = capacity - 1;
  }
}
