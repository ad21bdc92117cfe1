/**
 * Expiry bookkeeping, in two levels of indexed binary min-heaps:
 *
 *   ExpiryQueue (one, global)            KeyExpiry (one per namespace that has TTL'd keys)
 *   namespaces by earliest expiry  --->  that namespace's keys by expiry, plus key -> heap slot
 *
 * Why heaps: the active sweep and the exact listings (COUNT, KEYS, ...) need the due keys in order
 * without scanning live ones. Why indexed (each entry's slot is known): every TTL change (SET over a
 * TTL'd key, EXPIRE again, PERSIST, DEL) moves or removes exactly one entry in O(log n), so
 * refreshing a session key a million times leaves one entry, not a million stale ones. Why two
 * levels: a dropped namespace takes its KeyExpiry with it, so DROP touches one global entry per
 * dropped namespace instead of one per dropped key (bench/store-memory.ts: per-key removal of a
 * 1M-key namespace took ~3 s of background chunks; now it is one removal).
 *
 * Memory per TTL'd key: one Map entry (key -> slot) and two array slots (a double and a string
 * pointer); no object per entry, and nothing at all for keys without a TTL.
 */

/** One namespace's TTL'd keys, ordered by expiry time. */
export class KeyExpiry {
  /** key -> slot in the heap arrays (also answers "has this key a TTL?"). */
  private readonly slots = new Map<string, number>();
  private readonly times: number[] = [];
  private readonly keys: string[] = [];

  get size(): number {
    return this.times.length;
  }

  /** Earliest expiry time; Infinity when empty. */
  peekTime(): number {
    return this.times.length === 0 ? Number.POSITIVE_INFINITY : this.times[0]!;
  }

  peekKey(): string {
    return this.keys[0]!;
  }

  /** When `key` expires, or undefined when it has no TTL here. */
  timeOf(key: string): number | undefined {
    const slot = this.slots.get(key);
    return slot === undefined ? undefined : this.times[slot];
  }

  /** Adds or moves the entry of `key`; true when it was added. */
  set(key: string, time: number): boolean {
    const slot = this.slots.get(key);
    if (slot !== undefined) {
      const old = this.times[slot]!;
      this.times[slot] = time;
      if (time < old) this.siftUp(slot);
      else this.siftDown(slot);
      return false;
    }
    this.times.push(time);
    this.keys.push(key);
    this.siftUp(this.times.length - 1);
    return true;
  }

  /**
   * Adds or moves the entry of `key` without keeping the heap order (a log replay: `removeDue`
   * re-heaps once at the end). True when it was added.
   */
  setUnordered(key: string, time: number): boolean {
    const slot = this.slots.get(key);
    if (slot !== undefined) {
      this.times[slot] = time;
      return false;
    }
    this.slots.set(key, this.times.length);
    this.times.push(time);
    this.keys.push(key);
    return true;
  }

  /**
   * Removes every entry due at `now` in one pass and returns their keys; the rest is re-heaped in
   * O(n). For the end of a log replay, when a long downtime may have made most keys due: one
   * removal at a time moved ~20 heap entries per key (1M keys: ~3 s).
   */
  removeDue(now: number): string[] {
    const due: string[] = [];
    let kept = 0;
    for (let i = 0; i < this.times.length; i++) {
      const time = this.times[i]!;
      const key = this.keys[i]!;
      if (time <= now) {
        due.push(key);
        this.slots.delete(key);
      } else {
        this.times[kept] = time;
        this.keys[kept] = key;
        kept++;
      }
    }
    this.times.length = kept;
    this.keys.length = kept;
    for (let i = 0; i < kept; i++) this.slots.set(this.keys[i]!, i);
    for (let i = (kept >> 1) - 1; i >= 0; i--) this.siftDown(i);
    return due;
  }

  /** Removes the entry of `key`; true when there was one. */
  delete(key: string): boolean {
    const slot = this.slots.get(key);
    if (slot === undefined) return false;
    this.slots.delete(key);
    const time = this.times.pop()!;
    const last = this.keys.pop()!;
    if (slot === this.times.length) return true;
    const removedTime = this.times[slot]!;
    this.place(slot, time, last);
    if (time < removedTime) this.siftUp(slot);
    else this.siftDown(slot);
    return true;
  }

  private place(slot: number, time: number, key: string): void {
    this.times[slot] = time;
    this.keys[slot] = key;
    this.slots.set(key, slot);
  }

  private siftUp(slot: number): void {
    const time = this.times[slot]!;
    const key = this.keys[slot]!;
    while (slot > 0) {
      const parent = (slot - 1) >> 1;
      const parentTime = this.times[parent]!;
      if (parentTime <= time) break;
      this.place(slot, parentTime, this.keys[parent]!);
      slot = parent;
    }
    this.place(slot, time, key);
  }

  private siftDown(slot: number): void {
    const n = this.times.length;
    const time = this.times[slot]!;
    const key = this.keys[slot]!;
    for (;;) {
      let child = 2 * slot + 1;
      if (child >= n) break;
      if (child + 1 < n && this.times[child + 1]! < this.times[child]!) child++;
      const childTime = this.times[child]!;
      if (childTime >= time) break;
      this.place(slot, childTime, this.keys[child]!);
      slot = child;
    }
    this.place(slot, time, key);
  }
}

/** What the queue needs from a namespace node. */
export interface ExpiryOwner {
  expiry: KeyExpiry | undefined;
  /** Slot in the ExpiryQueue, -1 when not queued; maintained by ExpiryQueue only. */
  expirySlot: number;
}

/** All namespaces with TTL'd keys, ordered by their earliest expiry. */
export class ExpiryQueue<O extends ExpiryOwner> {
  private readonly owners: O[] = [];

  get size(): number {
    return this.owners.length;
  }

  /** Earliest expiry time of any key; Infinity when none. */
  peekTime(): number {
    return this.owners.length === 0 ? Number.POSITIVE_INFINITY : this.owners[0]!.expiry!.peekTime();
  }

  peek(): O {
    return this.owners[0]!;
  }

  /** Re-files `owner` after its earliest expiry changed (adds it if new, removes it if it has none). */
  update(owner: O): void {
    if (owner.expiry === undefined || owner.expiry.size === 0) {
      this.remove(owner);
      return;
    }
    if (owner.expirySlot === -1) {
      owner.expirySlot = this.owners.length;
      this.owners.push(owner);
    }
    this.siftUp(owner.expirySlot);
    this.siftDown(owner.expirySlot);
  }

  remove(owner: O): void {
    const slot = owner.expirySlot;
    if (slot === -1) return;
    owner.expirySlot = -1;
    const last = this.owners.pop()!;
    if (slot === this.owners.length) return;
    this.owners[slot] = last;
    last.expirySlot = slot;
    this.siftUp(slot);
    this.siftDown(last.expirySlot);
  }

  private time(slot: number): number {
    return this.owners[slot]!.expiry!.peekTime();
  }

  private swap(a: number, b: number): void {
    const x = this.owners[a]!;
    const y = this.owners[b]!;
    this.owners[a] = y;
    this.owners[b] = x;
    y.expirySlot = a;
    x.expirySlot = b;
  }

  private siftUp(slot: number): void {
    while (slot > 0) {
      const parent = (slot - 1) >> 1;
      if (this.time(parent) <= this.time(slot)) return;
      this.swap(slot, parent);
      slot = parent;
    }
  }

  private siftDown(slot: number): void {
    const n = this.owners.length;
    for (;;) {
      let child = 2 * slot + 1;
      if (child >= n) return;
      if (child + 1 < n && this.time(child + 1) < this.time(child)) child++;
      if (this.time(child) >= this.time(slot)) return;
      this.swap(slot, child);
      slot = child;
    }
  }
}
