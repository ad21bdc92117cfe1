/**
 * Namespace commands: KEYS NAMESPACES COUNT DROP. Listing is paged by cursor (`after` = the last
 * name of the previous page, `$ORDER`-style), so a page costs O(limit + log n) however large the
 * namespace, and no server-side cursor state has to be kept or expired.
 */
import type { Page } from '../store/store.js';
import { dropNamespaceArg, limitArg, namespaceArg } from './args.js';
import { andThen, defineCommand } from './table.js';

const keysPage = (page: Page) => ({ keys: page.names, next: page.next });
const namespacesPage = (page: Page) => ({ namespaces: page.names, next: page.next });

export const namespaceCommands = [
  defineCommand('KEYS', {
    flags: ['readonly'],
    handler: (req, ctx) => andThen(ctx.store.keys(namespaceArg(req), req.after, limitArg(req)), keysPage),
  }),

  defineCommand('NAMESPACES', {
    flags: ['readonly'],
    handler: (req, ctx) =>
      andThen(ctx.store.namespaces(namespaceArg(req), req.after, limitArg(req)), namespacesPage),
  }),

  defineCommand('COUNT', {
    flags: ['readonly'],
    handler: (req, ctx) => ctx.store.count(namespaceArg(req)),
  }),

  defineCommand('DROP', {
    flags: ['write', 'admin'],
    handler: (req, ctx) => ctx.store.drop(dropNamespaceArg(req)),
  }),
];
