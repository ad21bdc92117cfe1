/**
 * KEYS and NAMESPACES for a user who may not read every name in the namespace. The page must be a
 * function of the visible names alone: the first `limit` visible names after `after`, and a `next`
 * cursor (the last of them) only when another visible name follows. So the scan walks past hidden
 * names until the page is full and one more visible name is seen, or the namespace ends; nothing
 * in the answer (no empty page with a cursor, no cursor made from a hidden name) tells a hidden
 * name from none. A long run of hidden names is scanned over several turns of the event loop
 * (SCAN_PER_TURN names each), so it costs this request time, not other clients.
 */

import { isThenable, type MaybePromise } from '../result.js';
import type { Page } from '../store/store.js';

/** Names read from the store per call while scanning. */
const CHUNK = 256;
/** Names scanned before yielding to the event loop (~1 ms of matching on this machine). */
const SCAN_PER_TURN = 4096;

export type Lister = (namespace: string, after: string | undefined, limit: number) => MaybePromise<Page>;

export function visiblePage(
  list: Lister,
  namespace: string,
  after: string | undefined,
  limit: number,
  visible: (name: string) => boolean,
): MaybePromise<Page> {
  return new VisibleScan(list, namespace, after, limit, visible).run();
}

class VisibleScan {
  readonly #names: string[] = [];
  #cursor: string | undefined;
  #scanned = 0;

  constructor(
    readonly list: Lister,
    readonly namespace: string,
    after: string | undefined,
    readonly limit: number,
    readonly visible: (name: string) => boolean,
  ) {
    this.#cursor = after;
  }

  run(): MaybePromise<Page> {
    for (;;) {
      const page = this.list(this.namespace, this.#cursor, CHUNK);
      if (isThenable(page)) return page.then((p) => this.#take(p) ?? this.run());
      const done = this.#take(page);
      if (done !== undefined) return done;
      this.#scanned += page.names.length;
      if (this.#scanned >= SCAN_PER_TURN) {
        this.#scanned = 0;
        return new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run());
      }
    }
  }

  /** The finished page, or undefined when the scan goes on from `#cursor`. */
  #take(page: Page): Page | undefined {
    const names = this.#names;
    for (const name of page.names) {
      if (!this.visible(name)) continue;
      // One more visible name after a full page: that is what a non-null `next` promises.
      if (names.length === this.limit) return { names, next: names[names.length - 1]! };
      names.push(name);
    }
    if (page.next === null) return { names, next: null };
    this.#cursor = page.next;
    return undefined;
  }
}
