/** Server commands: PING ECHO INFO HELP. */
import { ERRORS, type ErrorCode } from '../protocol/errors.js';
import type { ResultOf } from '../protocol/schema.js';
import { andThen, type MaybePromise } from '../result.js';
import type { StoreStats } from '../store/store.js';
import { type CommandContext, defineCommand } from './table.js';

const NO_PUBSUB = {
  subscribers: 0,
  subscriptions: 0,
  observations: 0,
  publishes: 0,
  relayed: 0,
  messagesDelivered: 0,
  changesDelivered: 0,
  dropped: 0,
  slowDisconnected: 0,
};

function pubsubInfo(ctx: CommandContext): ResultOf<'INFO'>['pubsub'] {
  const stats = ctx.broker?.stats();
  if (stats === undefined) return { ...NO_PUBSUB, refused: { total: 0, byCode: {} } };
  const { refused, ...counts } = stats;
  const byCode: Record<string, number> = {};
  let total = 0;
  for (const [code, n] of Object.entries(refused)) {
    if (n > 0) byCode[code] = n;
    total += n;
  }
  return { ...counts, refused: { total, byCode } };
}

/** INFO: the store's counts may come from a remote backend, so it may answer with a promise. */
function info(ctx: CommandContext): MaybePromise<ResultOf<'INFO'>> {
  return andThen(ctx.store.stats(), infoWith, ctx);
}

function infoWith(storeStats: StoreStats, ctx: CommandContext): ResultOf<'INFO'> {
  const { server, store } = ctx;
  const { table, stats } = server;
  const byAction: Record<string, number> = {};
  let commandsTotal = 0;
  for (const command of table.list) {
    const n = stats.calls[command.index] ?? 0;
    byAction[command.name] = n;
    commandsTotal += n;
  }
  const byCode: Record<string, number> = {};
  let errorsTotal = 0;
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const n = stats.errors[code];
    if (n > 0) byCode[code] = n;
    errorsTotal += n;
  }
  const connections = server.connections();
  const memory = process.memoryUsage();
  return {
    version: server.version,
    uptimeMs: Math.max(0, Math.round(server.now() - server.startedAt)),
    connections: {
      current: connections.connections,
      total: connections.connectionsTotal,
      rejected: connections.connectionsRejected,
    },
    commands: { total: commandsTotal, byAction },
    errors: { total: errorsTotal, byCode },
    keys: storeStats.keys,
    keysWithTtl: storeStats.keysWithTtl,
    expired: storeStats.expired,
    namespaces: storeStats.namespaces,
    memory: { rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal },
    persistence: store.durability?.info() ?? null,
    pubsub: pubsubInfo(ctx),
  };
}

export const serverCommands = [
  defineCommand('PING', { flags: ['noAuth'], keys: { kind: 'none' }, handler: () => 'PONG' }),

  defineCommand('ECHO', { flags: [], keys: { kind: 'none' }, handler: (req) => req.value }),

  defineCommand('INFO', { flags: ['admin'], keys: { kind: 'none' }, handler: (_req, ctx) => info(ctx) }),

  defineCommand('HELP', {
    // Not before AUTH: an unauthenticated client learns only what HELLO tells it.
    flags: [],
    keys: { kind: 'none' },
    handler: (_req, ctx) =>
      ctx.server.table.list.map((command) => ({ action: command.name, summary: command.summary })),
  }),
];
