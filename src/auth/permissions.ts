/**
 * What each command needs, derived from the command table once at start (never a second list of
 * commands): its category from its flags, and which request fields name keys from its schema.
 *
 *   flags                 category     (a user needs it to run the command)
 *   noAuth                none         PING, HELLO, AUTH, HELP: allowed even before AUTH
 *   pubsub                pubsub       channel/key-pattern checks are the command's own (ctx.auth hooks)
 *   admin + write         namespace    DROP
 *   admin                 admin        INFO, CONFIG
 *   write                 write
 *   readonly              read
 *   (none of these)       none         ECHO: any authenticated user
 *
 *   schema fields         keys checked (read for `readonly`, write for `write` commands)
 *   key (+ namespace)     that key
 *   keys (+ namespace)    every key (MGET)
 *   entries (+ namespace) every entry's key (MSET)
 *   namespace only        result has `keys`/`namespaces`: listing, filtered to what the user may read
 *                         otherwise: the whole subtree (`ns^>`) must be allowed (COUNT, DROP)
 */
import type { Command, CommandTable } from '../commands/table.js';
import { CATEGORY_BIT } from './users.js';

export type Access =
  | { readonly kind: 'none' }
  | { readonly kind: 'key' | 'keys' | 'entries' | 'subtree'; readonly write: boolean }
  | { readonly kind: 'list'; readonly field: 'keys' | 'namespaces' };

export interface CommandPermission {
  /** CATEGORY_BIT of the command's category, or 0 when any authenticated user may run it. */
  readonly category: number;
  readonly categoryName: string;
  readonly access: Access;
  readonly noAuth: boolean;
}

const NONE: Access = { kind: 'none' };

export function categoryOf(command: Command): keyof typeof CATEGORY_BIT | null {
  if (command.noAuth) return null;
  if (command.pubsub) return 'pubsub';
  if (command.admin) return command.write ? 'namespace' : 'admin';
  if (command.write) return 'write';
  if (command.flags.includes('readonly')) return 'read';
  return null;
}

function accessOf(command: Command, category: string | null): Access {
  // Only data commands name keys in their fields; pub/sub's `keys` are patterns it checks itself.
  if (category !== 'read' && category !== 'write' && category !== 'namespace') return NONE;
  const write = category !== 'read';
  const fields = (command.schema.request as { properties?: Record<string, unknown> }).properties ?? {};
  if ('key' in fields) return { kind: 'key', write };
  if ('keys' in fields) return { kind: 'keys', write };
  if ('entries' in fields) return { kind: 'entries', write };
  if ('namespace' in fields) {
    const result = (command.schema.result as { properties?: Record<string, unknown> }).properties ?? {};
    if (!write && 'keys' in result) return { kind: 'list', field: 'keys' };
    if (!write && 'namespaces' in result) return { kind: 'list', field: 'namespaces' };
    return { kind: 'subtree', write };
  }
  return NONE;
}

/** One entry per command, indexed by `Command.index`. */
export function commandPermissions(table: CommandTable): CommandPermission[] {
  // By `index` (the order commands were defined), not by `list` order (the schema's).
  const out = new Array<CommandPermission>(table.list.length);
  for (const command of table.list) {
    const category = categoryOf(command);
    out[command.index] = {
      category: category === null ? 0 : CATEGORY_BIT[category],
      categoryName: category ?? 'none',
      access: accessOf(command, category),
      noAuth: command.noAuth,
    };
  }
  return out;
}
