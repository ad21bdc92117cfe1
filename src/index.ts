// The public API: `import { createServer, connect } from 'caretkv'`.

// Client library
export * from './client/index.js';
// Server, embedded
export { type Config, ConfigError, ConfigSchema, type ConfigSources, loadConfig } from './config.js';
export { createLogger, type Logger, LogLimiter } from './log.js';
export { ERRORS, type ErrorCode } from './protocol/errors.js';
export {
  type BrokerLimits,
  type ChangeEvent,
  DEFAULT_BROKER_LIMITS,
  type ListenOptions,
  type MessageEvent,
  type OwnedListenOptions,
  PubSub,
  PubSubError,
  type Unsubscribe,
} from './pubsub/index.js';
export { type CaretServer, createServer, type ServerOptions, type ServerParts } from './server.js';
export { MemoryStore, type MemoryStoreOptions } from './store/memory.js';
export type {
  ChangeListener,
  ChangeOp,
  JsonText,
  MaybePromise,
  SetOptions as StoreSetOptions,
  Store,
  StoreStats,
} from './store/store.js';
export { StoreError } from './store/store.js';
export { echoHandler } from './transport/echo.js';
export type { ListenAddress, ShutdownSummary, TransportStats } from './transport/listener.js';
export {
  type Encoded,
  Pipeline,
  type PipelineLimits,
  type RequestCodec,
} from './transport/pipeline.js';
export type { Connection, ConnectionHandler, HandlerFactory } from './transport/types.js';
