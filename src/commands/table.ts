/**
 * The command table is data. Each command family file (keys.ts, namespaces.ts, server.ts, later
 * pubsub.ts, auth.ts) declares its commands with `defineCommand`: name, summary (from the schema),
 * flags, schema and handler. `buildTable` turns the families into one lookup keyed by upper-case
 * action name; the dispatcher does the generic work (counting, error mapping, flag checks) once,
 * so handlers stay small and never repeat it.
 */
import type { Logger } from 'pino';
import type { ConnectionAuth } from '../auth/connection.js';
import type { ErrorCode } from '../protocol/errors.js';
import { ACTIONS, type ActionName, type ActionSpec, type RequestOf } from '../protocol/schema.js';
import type { Broker } from '../pubsub/broker.js';
import type { MaybePromise, Store } from '../store/store.js';
import type { Connection } from '../transport/types.js';

/**
 * Behaviour flags, as Valkey keeps them per command. The dispatcher and later layers read them:
 * auth lets `noAuth` commands through before AUTH; permissions map `readonly`/`write`/`admin`/
 * `pubsub` to categories.
 */
export type CommandFlag = 'readonly' | 'write' | 'admin' | 'pubsub' | 'noAuth';

/** What a handler sees besides its request. One per connection, created once. */
export interface CommandContext {
  readonly store: Store;
  readonly server: ServerInfo;
  /** The client's connection (absent when a command runs outside a connection, e.g. in tests). */
  readonly conn: Connection | undefined;
  readonly log: Logger;
  /**
   * The connection's authentication and permissions (src/auth/connection.ts): the dispatcher's
   * generic checks, and the hooks command families call for what only they can check
   * (`canSubscribe(pattern)`, `canPublish(channel)`, `canObserve(pattern)`, `canRead(key)`), the
   * user for the pub/sub `from` stamp (`userName`), and the `permissions-changed` event.
   */
  readonly auth: ConnectionAuth;
  /** The pub/sub broker (one per server); absent when the server runs without one. */
  readonly broker?: Broker;
}

/** What CONFIG RELOAD (and SIGHUP) report. */
export interface ReloadSummary {
  users: number;
  tls: boolean;
  restartNeeded: string[];
}

/** Connection counters as the transport reports them (`Transport.stats` fits this shape). */
export interface ConnectionCounts {
  readonly connections: number;
  readonly connectionsTotal: number;
  readonly connectionsRejected: number;
}

/** Server-wide facts and counters handlers may read (INFO, HELP). One per server. */
export interface ServerInfo {
  readonly version: string;
  readonly startedAt: number;
  readonly now: () => number;
  readonly table: CommandTable;
  readonly stats: ProtocolStats;
  readonly connections: () => ConnectionCounts;
  /** Re-reads the config file and applies what can change live; absent when there is no file to read. */
  readonly reload?: () => Promise<ReloadSummary>;
}

/** Per-server counters: requests by command (indexed by `Command.index`) and errors by code. */
export interface ProtocolStats {
  readonly calls: number[];
  readonly errors: Record<ErrorCode, number>;
}

/**
 * A domain failure returned (not thrown) by a handler, e.g. KEY_NOT_FOUND on a GET miss: misses
 * are routine, and an Error would capture a stack each time. Shared instances are fine.
 */
export class Fail {
  constructor(
    readonly code: ErrorCode,
    readonly message: string,
  ) {}
}

/**
 * A handler returns the result (a JSON value to serialize, or JSON text when the command is
 * declared `rawJson`), a `Fail`, or a promise of one of those. It may throw `ProtocolError` or
 * `StoreError` for client-visible failures; anything else is an INTERNAL fault.
 */
export type Handler<Req> = (req: Req, ctx: CommandContext) => MaybePromise<unknown>;

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

export interface CommandDef<A extends ActionName = ActionName> {
  readonly name: A;
  readonly summary: string;
  readonly flags: readonly CommandFlag[];
  readonly keys: AnyKeySpec;
  readonly schema: ActionSpec;
  /**
   * The handler's result is already JSON text (a stored value, a precomputed literal) and is
   * spliced into the response as is.
   */
  readonly rawJson: boolean;
  readonly handler: Handler<RequestOf<A>>;
}

export function defineCommand<A extends ActionName>(
  name: A,
  def: {
    flags: readonly CommandFlag[];
    /** Required: a command that names no key says `{ kind: 'none' }`. */
    keys: KeySpec<RequestOf<A>>;
    rawJson?: boolean;
    handler: Handler<RequestOf<A>>;
  },
): CommandDef<A> {
  return {
    name,
    summary: ACTIONS[name].summary,
    flags: def.flags,
    keys: def.keys as AnyKeySpec,
    schema: ACTIONS[name],
    rawJson: def.rawJson ?? false,
    handler: def.handler,
  };
}

/** Any one command's definition (a union, so each keeps its own request type). */
export type AnyCommandDef = { [A in ActionName]: CommandDef<A> }[ActionName];

/** A table entry: the definition plus its position (for counters) and flags as booleans. */
export interface Command {
  readonly index: number;
  readonly name: ActionName;
  readonly summary: string;
  readonly flags: readonly CommandFlag[];
  readonly write: boolean;
  readonly admin: boolean;
  readonly pubsub: boolean;
  readonly noAuth: boolean;
  readonly keys: AnyKeySpec;
  readonly schema: ActionSpec;
  readonly rawJson: boolean;
  // The table erases each handler's request type; the codec has validated the request against
  // the same action's schema before the dispatcher calls it.
  readonly handler: Handler<never>;
}

export interface CommandTable {
  readonly byName: ReadonlyMap<string, Command>;
  /** In the schema's order (ACTIONS). */
  readonly list: readonly Command[];
}

/** Builds the table; refuses duplicates and any action of the schema left without a command. */
export function buildTable(families: readonly (readonly AnyCommandDef[])[]): CommandTable {
  const byName = new Map<string, Command>();
  const list: Command[] = [];
  for (const family of families) {
    for (const def of family) {
      const name = def.name.toUpperCase() as ActionName;
      if (byName.has(name)) throw new Error(`command ${name} is defined twice`);
      const command: Command = {
        index: list.length,
        name,
        summary: def.summary,
        flags: def.flags,
        write: def.flags.includes('write'),
        admin: def.flags.includes('admin'),
        pubsub: def.flags.includes('pubsub'),
        noAuth: def.flags.includes('noAuth'),
        keys: def.keys,
        schema: def.schema,
        rawJson: def.rawJson,
        handler: def.handler as Handler<never>,
      };
      byName.set(name, command);
      list.push(command);
    }
  }
  const order = Object.keys(ACTIONS);
  for (const name of order) {
    if (!byName.has(name)) throw new Error(`action ${name} has a schema but no command`);
  }
  // HELP and INFO list commands in the schema's (the document's) order, whatever the family order.
  list.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  return { byName, list };
}

/**
 * Applies `f` to a result that may or may not be a promise, without allocating on the synchronous
 * path. `f` should be a module-level function (no closure per request); `arg` carries what it needs.
 */
export function andThen<T, R, A = undefined>(
  value: MaybePromise<T>,
  f: (value: T, arg: A) => R,
  arg?: A,
): MaybePromise<R> {
  if (isThenable(value)) return value.then((v) => f(v, arg as A));
  return f(value, arg as A);
}

export function isThenable<T>(value: MaybePromise<T> | unknown): value is Promise<T> {
  return (
    typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
  );
}
