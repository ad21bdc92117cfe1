import type { Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { ERRORS } from './protocol/errors.js';
import { echoHandler } from './transport/echo.js';
import {
  type ListenAddress,
  type ShutdownSummary,
  Transport,
  type TransportStats,
} from './transport/server.js';
import type { HandlerFactory } from './transport/types.js';

export interface ServerOptions {
  /** The protocol spoken on each connection; the raw echo handler by default. */
  handler?: HandlerFactory;
  /** Defaults to a logger built from `config.logLevel` / `config.logFormat`. */
  logger?: Logger;
}

export interface CaretServer {
  /** Start accepting; resolves with the bound address (useful with port 0). Logs `listening`. */
  listen(): Promise<ListenAddress>;
  /** Graceful shutdown (see Transport.close); logs and returns the summary. Idempotent. */
  close(): Promise<ShutdownSummary>;
  readonly address: ListenAddress | null;
  readonly stats: TransportStats;
  readonly logger: Logger;
}

// Built once: every rejected connection gets the same bytes.
const TOO_MANY_CONNECTIONS_LINE = `${JSON.stringify({
  ok: false,
  error: { code: 'TOO_MANY_CONNECTIONS', message: ERRORS.TOO_MANY_CONNECTIONS },
})}\n`;

/** The composition root: config + logger + transport + the protocol handler. */
export function createServer(config: Config, options: ServerOptions = {}): CaretServer {
  const logger = options.logger ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const transport = new Transport({
    host: config.host,
    port: config.port,
    idleTimeout: config.idleTimeout,
    maxConnections: config.maxConnections,
    shutdownGrace: config.shutdownGrace,
    handler: options.handler ?? echoHandler,
    logger,
    rejectMessage: TOO_MANY_CONNECTIONS_LINE,
  });
  let closing: Promise<ShutdownSummary> | undefined;

  return {
    logger,
    async listen() {
      const address = await transport.listen();
      logger.info(address, 'listening');
      return address;
    },
    close() {
      closing ??= transport.close().then((summary) => {
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
