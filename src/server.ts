import type { Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { ERRORS } from './protocol/errors.js';
import { createProtocolHandler, type ProtocolHandlerFactory } from './session.js';
import { MemoryStore } from './store/memory.js';
import type { Store } from './store/store.js';
import {
  type ListenAddress,
  type ShutdownSummary,
  Transport,
  type TransportStats,
} from './transport/server.js';
import type { HandlerFactory } from './transport/types.js';

export interface ServerOptions {
  /**
   * A raw protocol to speak instead of caretkv's JSON protocol (e.g. `echoHandler`). With it,
   * the server has no store.
   */
  handler?: HandlerFactory;
  /** The storage engine; default: a new in-memory store. Closed when the server closes. */
  store?: Store;
  /** Defaults to a logger built from `config.logLevel` / `config.logFormat`. */
  logger?: Logger;
}

export interface CaretServer {
  /** Start accepting; resolves with the bound address (useful with port 0). Logs `listening`. */
  listen(): Promise<ListenAddress>;
  /**
   * Graceful shutdown (see Transport.close), then the store closes; logs and returns the summary.
   * Idempotent.
   */
  close(): Promise<ShutdownSummary>;
  readonly address: ListenAddress | null;
  readonly stats: TransportStats;
  readonly logger: Logger;
  /** The store behind the JSON protocol; null when the server speaks a raw handler. */
  readonly store: Store | null;
}

// Built once: every rejected connection gets the same bytes.
const TOO_MANY_CONNECTIONS_LINE = `${JSON.stringify({
  ok: false,
  error: { code: 'TOO_MANY_CONNECTIONS', message: ERRORS.TOO_MANY_CONNECTIONS },
})}\n`;

/** The composition root: config + logger + store + protocol handler + transport. */
export function createServer(config: Config, options: ServerOptions = {}): CaretServer {
  const logger = options.logger ?? createLogger({ level: config.logLevel, format: config.logFormat });
  let store: Store | null = null;
  let handler: HandlerFactory | ProtocolHandlerFactory;
  if (options.handler) {
    handler = options.handler;
  } else {
    store = options.store ?? new MemoryStore({ logger: logger.child({ component: 'store' }) });
    handler = createProtocolHandler({
      store,
      maxLineBytes: config.maxLineBytes,
      maxDepth: config.maxDepth,
      connections: () => transport.stats,
    });
  }
  const transport = new Transport({
    host: config.host,
    port: config.port,
    idleTimeout: config.idleTimeout,
    maxConnections: config.maxConnections,
    shutdownGrace: config.shutdownGrace,
    handler,
    logger,
    rejectMessage: TOO_MANY_CONNECTIONS_LINE,
  });
  let closing: Promise<ShutdownSummary> | undefined;

  return {
    logger,
    store,
    async listen() {
      const address = await transport.listen();
      logger.info(address, 'listening');
      return address;
    },
    close() {
      closing ??= transport.close().then(async (summary) => {
        await store?.close();
        logger.info(summary, 'shutdown complete');
        return summary;
      });
      return closing;
    },
    get address() {
      return transport.address;
    },
    get stats() {
      return transport.stats;
    },
  };
}
