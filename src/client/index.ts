export type {
  Entries,
  Info,
  KeyOptions,
  KeysOptions,
  NamespacesOptions,
  Page,
  SetOptions,
} from './client.js';
export { CaretClient, connect, createClient } from './client.js';
export type { ClientEvents, ClientState, Handshake, PushMessage, RawRequest } from './core.js';
export { CaretError, type CaretErrorCode, CLIENT_ERRORS, type ClientErrorCode } from './errors.js';
export { type ClientOptions, DEFAULT_HOST, DEFAULT_PORT, defaultRetryStrategy } from './options.js';
export {
  DEFAULT_HIGH_WATER_MARK,
  Subscription,
  type SubscriptionChange,
  type SubscriptionEvents,
  type SubscriptionGap,
  type SubscriptionMessage,
  type SubscriptionOptions,
  type SubscriptionRevoked,
} from './subscription.js';
