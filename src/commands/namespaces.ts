/**
 * Namespace commands: KEYS NAMESPACES COUNT DROP. Listing is paged by cursor (`after` = the last
 * name of the previous page, `$ORDER`-style), so a page costs O(limit + log n) however large the
 * namespace, and no server-side cursor state has to be kept or expired. A user who may not read
 * every name gets pages of the names it may read (listing.ts).
 */

import { andThen, type MaybePromise } from '../result.js';
import type { Page } from '../store/store.js';
import { dropNamespaceArg, limitArg, namespaceArg } from './args.js';
import { visiblePage } from './listing.js';
import { type CommandContext, defineCommand } from './table.js';

const keysPage = (page: Page) => ({ keys: page.names, next: page.next });
const namespacesPage = (page: Page) => ({ namespaces: page.names, next: page.next });

/**
 * KEYS and NAMESPACES: one page of the names directly in the namespace. A user who may not read
 * them all gets pages built from the names it may read only (listing.ts).
 */
function listNames(
  ctx: CommandContext,
  req: { readonly namespace?: string; readonly after?: string; readonly limit?: number },
  field: 'keys' | 'namespaces',
): MaybePromise<Page> {
  const ns = namespaceArg(req);
  const visible = ctx.auth.visibleNames(ns, field);
  if (visible === undefined) return ctx.store[field](ns, req.after, limitArg(req));
  return visiblePage(
    (n, after, limit) => ctx.store[field](n, after, limit),
    ns,
    req.after,
    limitArg(req),
    visible,
  );
}

export const namespaceCommands = [
  defineCommand('KEYS', {
    flags: ['readonly'],
    keys: { kind: 'list', field: 'keys' },
    handler: (req, ctx) => andThen(listNames(ctx, req, 'keys'), keysPage),
  }),

  defineCommand('NAMESPACES', {
    flags: ['readonly'],
    keys: { kind: 'list', field: 'namespaces' },
    handler: (req, ctx) => andThen(listNames(ctx, req, 'namespaces'), namespacesPage),
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
