/**
 * Namespace commands: KEYS NAMESPACES COUNT DROP. Listing is paged by cursor (`after` = the last
 * name of the previous page, `$ORDER`-style), so a page costs O(limit + log n) however large the
 * namespace, and no server-side cursor state has to be kept or expired. A user who may not read
 * every name gets pages of the names it may read (listing.ts).
 */

import { andThen } from '../result.js';
import type { Page } from '../store/store.js';
import { dropNamespaceArg, limitArg, namespaceArg } from './args.js';
import { visiblePage } from './listing.js';
import { defineCommand } from './table.js';

const keysPage = (page: Page) => ({ keys: page.names, next: page.next });
const namespacesPage = (page: Page) => ({ namespaces: page.names, next: page.next });

export const namespaceCommands = [
  defineCommand('KEYS', {
    flags: ['readonly'],
    keys: { kind: 'list', field: 'keys' },
    handler: (req, ctx) => {
      const ns = namespaceArg(req);
      const visible = ctx.auth.visibleNames(ns, 'keys');
      const page =
        visible === undefined
          ? ctx.store.keys(ns, req.after, limitArg(req))
          : visiblePage(ctx.store.keys.bind(ctx.store), ns, req.after, limitArg(req), visible);
      return andThen(page, keysPage);
    },
  }),

  defineCommand('NAMESPACES', {
    flags: ['readonly'],
    keys: { kind: 'list', field: 'namespaces' },
    handler: (req, ctx) => {
      const ns = namespaceArg(req);
      const visible = ctx.auth.visibleNames(ns, 'namespaces');
      const page =
        visible === undefined
          ? ctx.store.namespaces(ns, req.after, limitArg(req))
          : visiblePage(ctx.store.namespaces.bind(ctx.store), ns, req.after, limitArg(req), visible);
      return andThen(page, namespacesPage);
    },
  }),

  defineCommand('COUNT', {
    flags: ['readonly'],
    keys: { kind: 'subtree', access: 'read' },
    handler: (req, ctx) => ctx.store.count(namespaceArg(req)),
  }),

  defineCommand('DROP', {
    flags: ['write', 'admin'],
    keys: { kind: 'subtree', access: 'write' },
    handler: (req, ctx) => ctx.store.drop(dropNamespaceArg(req)),
  }),
];
