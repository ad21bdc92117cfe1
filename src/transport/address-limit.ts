/**
 * Connections per client address, shared by every listener of a server (plain and TLS), so one
 * host cannot take every slot of `--max-connections` and lock everyone else out. How an address
 * is counted (normalized, or exempt: loopback) is the composition root's policy, passed in.
 */
export class AddressLimit {
  readonly #counts = new Map<string, number>();

  constructor(
    /** Most connections from one address; 0 = no limit. */
    readonly max: number,
    /** The key an address is counted under, or null for an address that is not counted. */
    readonly keyOf: (address: string) => string | null = (address) => address,
  ) {}

  /**
   * Counts a new connection from `address`: its key (pass it to `release`), undefined when the
   * address is not counted, or false when it is at the limit (the connection must be refused).
   */
  acquire(address: string | undefined): string | undefined | false {
    if (this.max === 0 || address === undefined) return undefined;
    const key = this.keyOf(address);
    if (key === null) return undefined;
    const count = this.#counts.get(key) ?? 0;
    if (count >= this.max) return false;
    this.#counts.set(key, count + 1);
    return key;
  }

  release(key: string): void {
    const count = this.#counts.get(key);
    if (count === undefined) return;
    if (count <= 1) this.#counts.delete(key);
    else this.#counts.set(key, count - 1);
  }

  /** Addresses with at least one counted connection. */
  get addresses(): number {
    return this.#counts.size;
  }
}
