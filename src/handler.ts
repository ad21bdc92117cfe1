/**
 * The JSON protocol's connection handler, composed: per connection, a protocol-neutral pipeline
 * (transport/pipeline.ts: ordering, in-flight cap, per-turn budget, backpressure, shutdown) with
 * the NDJSON codec (protocol/ndjson.ts) plugged in, running requests through the command
 * dispatcher with the connection's authentication. The composition root (server.ts) builds one.
 */
import { type Authority, openAuthority } from './auth/authority.js';
import { createStats, Dispatcher } from './commands/dispatch.js';
import { defaultCommandTable } from './commands/index.js';
import type {
  CommandContext,
  CommandTable,
  ConnectionCounts,
  ProtocolStats,
  ReloadSummary,
  ServerInfo,
} from './commands/table.js';
import { NdjsonCodec } from './protocol/ndjson.js';
import { LIMITS } from './protocol/schema.js';
import type { PubSubBroker } from './pubsub/broker.js';
import type { Store } from './store/store.js';
import { Pipeline } from './transport/pipeline.js';
import type { Connection, ConnectionHandler, HandlerFactory } from './transport/types.js';
import { packageVersion } from './version.js';

/** What the composition root passes to `createProtocolHandler`. */
export interface ProtocolDeps {
  store: Store;
  /** Longest request line in bytes (config `maxLineBytes`); default 1 MiB. */
  maxLineBytes?: number;
  /** Deepest nesting of a request line, the request object counting as one (config `maxDepth`); default 64. */
  maxDepth?: number;
  /** Reported by INFO; defaults to package.json's version. */
  version?: string;
  /** Connection counters for INFO; pass `() => server.stats` (the transport's counters fit). */
  connections?: () => ConnectionCounts;
  /** Clock for uptime (ms); default `Date.now`. */
  now?: () => number;
  /** The command table; default: every built-in command. */
  table?: CommandTable;
  /**
   * Authentication and permissions, built over the same table; default: an open server (no users).
   * Build it with `createAuthority(table, ...)` so its permissions match the table.
   */
  auth?: (table: CommandTable) => Authority;
  /** The pub/sub broker; without it the pub/sub actions answer INTERNAL ("not enabled"). */
  broker?: PubSubBroker;
  /**
   * Longest stretch of request processing for one connection per turn of the event loop, in ms;
   * default PUMP_BUDGET_MS. Tests that check what one chunk does pass Infinity.
   */
  turnBudgetMs?: number;
  /** CONFIG RELOAD's implementation (the composition root re-reads the config file). */
  reload?: () => Promise<ReloadSummary>;
}

/** The handler factory, with the protocol counters INFO reports. */
export interface ProtocolHandlerFactory extends HandlerFactory {
  readonly stats: ProtocolStats;
  readonly server: ServerInfo;
  readonly auth: Authority;
}

/**
 * Longest stretch of request processing for one connection in one turn of the event loop. Checked
 * after each request, so a single request can run past it (the store and broker bound their own
 * big operations; docs/reliability.md).
 */
const PUMP_BUDGET_MS = 5;

const NO_CONNECTIONS: ConnectionCounts = { connections: 0, connectionsTotal: 0, connectionsRejected: 0 };

export function createProtocolHandler(deps: ProtocolDeps): ProtocolHandlerFactory {
  const table = deps.table ?? defaultCommandTable();
  const stats = createStats(table);
  const now = deps.now ?? Date.now;
  const server: ServerInfo = {
    version: deps.version ?? packageVersion(),
    startedAt: now(),
    now,
    table,
    stats,
    connections: deps.connections ?? (() => NO_CONNECTIONS),
    ...(deps.reload && { reload: deps.reload }),
  };
  const dispatcher = new Dispatcher(table, stats);
  const maxLineBytes = deps.maxLineBytes ?? LIMITS.defaultMaxLineBytes;
  const maxDepth = deps.maxDepth ?? LIMITS.defaultMaxDepth;
  const turnBudgetMs = deps.turnBudgetMs ?? PUMP_BUDGET_MS;
  const auth = deps.auth?.(table) ?? openAuthority(table, maxLineBytes);

  const factory = (conn: Connection): ConnectionHandler => {
    const refusal = auth.admission(conn.remoteAddress);
    if (refusal !== null) {
      conn.end(refusal);
      return REFUSED;
    }
    const connAuth = auth.attach(conn);
    const broker = deps.broker;
    const ctx: CommandContext = { store: deps.store, server, conn, log: conn.log, auth: connAuth, broker };
    const codec = new NdjsonCodec(dispatcher, ctx, connAuth, {
      maxDepth,
      log: conn.log,
      ...(broker && { onDrained: () => broker.connectionDrained(conn) }),
      onClosed: () => {
        // Every subscription and observation of this connection goes at once.
        broker?.connectionClosed(conn);
        connAuth.dispose();
      },
    });
    return new Pipeline(conn, codec, { turnBudgetMs });
  };
  return Object.assign(factory, { stats, server, auth });
}

/** The handler of a connection turned away at accept (its one line is already on its way). */
const REFUSED: ConnectionHandler = { data() {}, close() {} };
