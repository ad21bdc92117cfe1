/**
 * What each command needs, derived from the command table once at start (never a second list of
 * commands): its category from its flags, and the keys it touches from its key spec (the `keys`
 * every command definition must declare; see KeySpec in src/commands/table.ts).
 *
 *   flags                 category     (a user needs it to run the command)
 *   noAuth                none         PING, HELLO, AUTH: allowed even before AUTH
 *   pubsub                pubsub       channel/key-pattern checks are the command's own (ctx.auth hooks)
 *   admin + write         namespace    DROP
 *   admin                 admin        INFO, CONFIG
 *   write                 write
 *   readonly              read
 *   (none of these)       none         ECHO, HELP: any authenticated user
 *
 *   key spec              keys checked (with the spec's read or write access)
 *   key                   that key, relative to `namespace`
 *   keys / entries        every key of `keys` (MGET) / `entries` (MSET), relative to `namespace`
 *   subtree               every key below `namespace` (`ns^>` must be allowed: COUNT, DROP)
 *   list                  none up front; the handler lists only what the user may read
 *   none / patterns       none (pub/sub checks its patterns itself)
 */
import type { AnyKeySpec } from '../protocol/keyspec.js';
import { CATEGORY_BIT } from './users.js';

/**
 * What permissions need to know of a command: a table entry of src/commands/table.ts fits. Declared
 * here so auth/ does not import commands/ (commands/ imports auth/ for ctx.auth).
 */
export interface PermissionSubject {
  /** Position in the table (permissions are an array indexed by it). */
  readonly index: number;
  readonly name: string;
  readonly flags: readonly string[];
  readonly noAuth: boolean;
  readonly pubsub: boolean;
  readonly admin: boolean;
  readonly write: boolean;
  readonly keys: AnyKeySpec;
}

/** The command table as permissions see it. */
export interface PermissionTable {
  readonly list: readonly PermissionSubject[];
}

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

export function categoryOf(command: PermissionSubject): keyof typeof CATEGORY_BIT | null {
  if (command.noAuth) return null;
  if (command.pubsub) return 'pubsub';
  if (command.admin) return command.write ? 'namespace' : 'admin';
  if (command.write) return 'write';
  if (command.flags.includes('readonly')) return 'read';
  return null;
}

function accessOf(command: PermissionSubject): Access {
  const spec = command.keys;
  switch (spec.kind) {
    case 'none':
    case 'patterns':
      return NONE;
    case 'list':
      return { kind: 'list', field: spec.field };
    default:
      return { kind: spec.kind, write: spec.access === 'write' };
  }
}

/** One entry per command, indexed by `Command.index`. */
export function commandPermissions(table: PermissionTable): CommandPermission[] {
  // By `index` (the order commands were defined), not by `list` order (the schema's).
  const out = new Array<CommandPermission>(table.list.length);
  for (const command of table.list) {
    const category = categoryOf(command);
    out[command.index] = {
      category: category === null ? 0 : CATEGORY_BIT[category],
      categoryName: category ?? 'none',
      access: accessOf(command),
      noAuth: command.noAuth,
    };
  }
  return out;
}
