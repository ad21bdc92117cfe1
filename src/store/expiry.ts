/**
 * The expiry index: a binary min-heap of (expiresAt, key, owner), ordered by expiresAt.
 *
 * Why a heap, and why indexed: the active sweep and the exact listings (COUNT, KEYS, ...) need the
 * due keys, in order, without scanning live ones; and every TTL change (SET over a TTL'd key, EXPIRE
 * again, PERSIST, DEL, DROP) must remove or move the key's entry exactly, so that refreshing a
 * session key a million times leaves one entry, not a million stale ones. Each owner (a namespace
 * node) keeps `ttls: key -> slot in this heap`; the heap rewrites those slots whenever it moves an
 * entry, so removal is O(log n) with no search.
 *
 * Memory: three parallel arrays (a double, a string pointer, an owner pointer per entry) plus the
 * owner's Map entry; no object per entry. The owner's map is also where a read finds the TTL, so a
 * key without a TTL costs nothing here.
 */

export interface ExpiryOwner {
  /** key -> slot in the heap; maintained by ExpiryHeap only. Present while the owner has entries. */
  ttls: Map<string, number> | undefined;
}

export class ExpiryHeap<O extends ExpiryOwner> {
  private readonly times: number[] = [];
  private readonly keys: string[] = [];
  private readonly owners: O[] = [];

  get size(): number {
    return this.times.length;
  }

  /** Expiry time of the earliest entry; Infinity when empty. */
  peekTime(): number {
    return this.times.length === 0 ? Number.POSITIVE_INFINITY : this.times[0]!;
  }

  peekKey(): string {
    return this.keys[0]!;
  }

  peekOwner(): O {
    return this.owners[0]!;
  }

  timeAt(slot: number): number {
    return this.times[slot]!;
  }

  /** Adds an entry; `owner.ttls` must exist and must not hold `key` yet. */
  add(owner: O, key: string, time: number): void {
    const slot = this.times.length;
    this.times.push(time);
    this.keys.push(key);
    this.owners.push(owner);
    owner.ttls!.set(key, slot);
    this.siftUp(slot);
  }

  /** Moves the entry at `slot` to a new time. */
  update(slot: number, time: number): void {
    const old = this.times[slot]!;
    this.times[slot] = time;
    if (time < old) this.siftUp(slot);
    else this.siftDown(slot);
  }

  /** Removes the entry at `slot` and forgets it in its owner's map. */
  remove(slot: number): void {
    const owner = this.owners[slot]!;
    owner.ttls!.delete(this.keys[slot]!);
    const last = this.times.length - 1;
    const time = this.times.pop()!;
    const key = this.keys.pop()!;
    const lastOwner = this.owners.pop()!;
    if (slot === last) return;
    const removedTime = this.times[slot]!;
    this.place(slot, time, key, lastOwner);
    if (time < removedTime) this.siftUp(slot);
    else this.siftDown(slot);
  }

  private place(slot: number, time: number, key: string, owner: O): void {
    this.times[slot] = time;
    this.keys[slot] = key;
    this.owners[slot] = owner;
    owner.ttls!.set(key, slot);
  }

  private siftUp(slot: number): void {
    const time = this.times[slot]!;
    const key = this.keys[slot]!;
    const owner = this.owners[slot]!;
    while (slot > 0) {
      const parent = (slot - 1) >> 1;
      const parentTime = this.times[parent]!;
      if (parentTime <= time) break;
      this.place(slot, parentTime, this.keys[parent]!, this.owners[parent]!);
      slot = parent;
    }
    this.place(slot, time, key, owner);
  }

  private siftDown(slot: number): void {
    const n = this.times.length;
    const time = this.times[slot]!;
    const key = this.keys[slot]!;
    const owner = this.owners[slot]!;
    for (;;) {
      let child = 2 * slot + 1;
      if (child >= n) break;
      if (child + 1 < n && this.times[child + 1]! < this.times[child]!) child++;
      const childTime = this.times[child]!;
      if (childTime >= time) break;
      this.place(slot, childTime, this.keys[child]!, this.owners[child]!);
      slot = child;
    }
    this.place(slot, time, key, owner);
  }
}
