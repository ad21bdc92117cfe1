/**
 * Key specs: the part of a command's definition that says which request fields name keys and how
 * the command touches them. Here, below both commands/ (which declares them) and auth/ (which
 * checks them), so neither imports the other for it.
 */

/** How a command touches a key: reading it, or writing (creating, changing, removing) it. */
export type KeyAccess = 'read' | 'write';

/**
 * Which keys a command touches, named explicitly in its definition (as Valkey's key specs do),
 * never inferred from field names: permissions (src/auth/permissions.ts) check exactly these, and
 * src/commands/keyspec.test.ts runs every command against a recording store to prove the handler
 * touches nothing else. Each variant is allowed only for requests that have its field.
 *
 *   none      touches no key (PING, INFO, AUTH...)
 *   key       `key`, relative to `namespace`
 *   keys      every entry of `keys`, relative to `namespace` (MGET)
 *   entries   every key of `entries`, relative to `namespace` (MSET)
 *   subtree   every key below `namespace` (COUNT, DROP)
 *   list      names directly in `namespace`, shown only where the user may read (KEYS, NAMESPACES)
 *   patterns  channel or key patterns the command checks itself through ctx.auth (pub/sub)
 */
export type KeySpec<Req = unknown> =
  | { readonly kind: 'none' }
  | { readonly kind: 'patterns' }
  | (Req extends { key: string } ? { readonly kind: 'key'; readonly access: KeyAccess } : never)
  | (Req extends { keys: readonly string[] } ? { readonly kind: 'keys'; readonly access: KeyAccess } : never)
  | (Req extends { entries: Record<string, unknown> }
      ? { readonly kind: 'entries'; readonly access: KeyAccess }
      : never)
  | (Req extends { namespace?: string }
      ?
          | { readonly kind: 'subtree'; readonly access: KeyAccess }
          | { readonly kind: 'list'; readonly field: 'keys' | 'namespaces' }
      : never);

/** Any command's key spec, with the request type erased (what the table and permissions see). */
export type AnyKeySpec =
  | { readonly kind: 'none' | 'patterns' }
  | { readonly kind: 'key' | 'keys' | 'entries' | 'subtree'; readonly access: KeyAccess }
  | { readonly kind: 'list'; readonly field: 'keys' | 'namespaces' };
