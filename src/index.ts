export { type Config, ConfigError, ConfigSchema, type ConfigSources, loadConfig } from './config.js';
export { createLogger, type Logger, LogLimiter } from './log.js';
export { type CaretServer, createServer, type ServerOptions } from './server.js';
export { echoHandler } from './transport/echo.js';
export type { ListenAddress, ShutdownSummary, TransportStats } from './transport/server.js';
export type { Connection, ConnectionHandler, HandlerFactory } from './transport/types.js';
