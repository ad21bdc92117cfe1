import { describe, expect, it } from 'vitest';
import type { Page } from '../store/store.js';
import { type Lister, visiblePage } from './listing.js';

/** A sorted namespace of `names`, paged like a Store; `async` answers with promises. */
function lister(names: readonly string[], async = false): Lister {
  const sorted = [...names].sort();
  return (_ns, after, limit) => {
    const start = after === undefined ? 0 : sorted.findIndex((n) => n > after);
    const from = start === -1 ? sorted.length : start;
    const page = sorted.slice(from, from + limit);
    const result: Page = { names: page, next: from + limit < sorted.length ? page[page.length - 1]! : null };
    return async ? Promise.resolve(result) : result;
  };
}

const visible = (name: string) => name.startsWith('v');

describe('visiblePage', () => {
  it('fills the page past hidden names and gives a cursor only when a visible name follows', async () => {
    const list = lister(['a', 'v1', 'b', 'c', 'v2', 'd', 'v3', 'e']);
    expect(await visiblePage(list, '', undefined, 2, visible)).toEqual({ names: ['v1', 'v2'], next: 'v2' });
    expect(await visiblePage(list, '', 'v2', 2, visible)).toEqual({ names: ['v3'], next: null });
    expect(await visiblePage(list, '', 'v3', 2, visible)).toEqual({ names: [], next: null });
  });

  it('answers the same with and without hidden names, for any after', async () => {
    const shown = ['v1', 'v2', 'v9'];
    const hidden = ['a', 'hidden', 'hiddem', 'v1a', 'v2x', 'z'].map((n) => n.replace(/^v/, 'w'));
    for (const after of [undefined, '', 'a', 'h', 'hid', 'hidden', 'v1', 'v15', 'w', 'zz']) {
      for (const limit of [1, 2, 3]) {
        const plain = await visiblePage(lister(shown), '', after, limit, visible);
        expect(await visiblePage(lister([...shown, ...hidden]), '', after, limit, visible)).toEqual(plain);
      }
    }
  });

  it('scans a long hidden run over several turns, and through an async store', async () => {
    const names = Array.from({ length: 20_000 }, (_, i) => `h${String(i).padStart(5, '0')}`);
    names.push('v-last');
    const sync = visiblePage(lister(names), '', undefined, 10, visible);
    // More than one turn's budget of hidden names: the answer comes on a later turn.
    expect(sync).toBeInstanceOf(Promise);
    expect(await sync).toEqual({ names: ['v-last'], next: null });
    expect(await visiblePage(lister(names, true), '', undefined, 10, visible)).toEqual({
      names: ['v-last'],
      next: null,
    });
  });
});
