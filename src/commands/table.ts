/**
 * The command table is data. Each command family file (keys.ts, namespaces.ts, info.ts, pubsub.ts,
 * auth.ts) declares its commands with `defineCommand`: name, summary (from the schema), flags, key
 * spec, schema and handler. `buildTable` turns the families into one lookup keyed by upper-case
 * action name; the dispatcher does the generic work (counting, error mapping, flag checks) once,
 * so handlers stay small and never repeat it.
 */
import type { Logger } from 'pino';
import type { ConnectionAuth } from '../auth/connection.js';
import type { ResultKind, ResultValue } from '../protocol/codec.js';
import type { ErrorCode } from '../protocol/errors.js';
import type { AnyKeySpec, KeySpec } from '../protocol/keyspec.js';
import { ACTIONS, type ActionName, type ActionSpec, type RequestOf } from '../protocol/schema.js';
import type { PubSubBroker } from '../pubsub/broker.js';
import type { Fail, MaybePromise } from '../result.js';
import type { Store } from '../store/store.js';
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
  readonly broker?: PubSubBroker;
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
 * A handler returns its result as a value of the kind its command declares (protocol/codec.ts
 * turns it into text; a handler never builds JSON), a `Fail`, or a promise of one of those. It may
 * throw `ProtocolError` or `StoreError` for client-visible failures; anything else is an INTERNAL
 * fault.
 */
export type Handler<Req, R = unknown> = (req: Req, ctx: CommandContext) => MaybePromise<R | Fail>;

export interface CommandDef<A extends ActionName = ActionName> {
  readonly name: A;
  readonly summary: string;
  readonly flags: readonly CommandFlag[];
  readonly keys: AnyKeySpec;
  readonly schema: ActionSpec;
  /** What the handler's result is: a JSON value (`json`), stored JSON text, stored texts by name. */
  readonly result: ResultKind;
  readonly handler: Handler<RequestOf<A>>;
}

export function defineCommand<A extends ActionName, K extends ResultKind = 'json'>(
  name: A,
  def: {
    flags: readonly CommandFlag[];
    /** Required: a command that names no key says `{ kind: 'none' }`. */
    keys: KeySpec<RequestOf<A>>;
    /** Default `json`; the handler's return type follows the kind. */
    result?: K;
    handler: Handler<RequestOf<A>, ResultValue[K]>;
  },
): CommandDef<A> {
  return {
    name,
    summary: ACTIONS[name].summary,
    flags: def.flags,
    keys: def.keys as AnyKeySpec,
    schema: ACTIONS[name],
    result: def.result ?? 'json',
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
  readonly result: ResultKind;
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
        result: def.result,
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
