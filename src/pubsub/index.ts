/** The pub/sub room: broker, patterns, subscribers. The composition root and commands import from here. */
export {
  Broker,
  type BrokerOptions,
  type BrokerStats,
  type PubSubBroker,
  SERVER_FROM,
} from './broker.js';
export {
  type BrokerLimits,
  DEFAULT_BROKER_LIMITS,
  type Publisher,
  type PublisherId,
  PubSubError,
  PubSubRefusal,
  REFUSAL_CODES,
  type RefusalCode,
  type SlowSubscriberPolicy,
} from './limits.js';
export {
  type ChangeEvent,
  type ListenOptions,
  type MessageEvent,
  type OwnedListenOptions,
  PubSub,
  type Unsubscribe,
} from './local.js';
export {
  channelRules,
  isReserved,
  isSystemChannel,
  KEY_PATTERN_RULES,
  matches,
  matchesUnder,
  type PathRules,
  type Pattern,
  PatternError,
  parseChannel,
  parsePattern,
  SYSTEM_SEGMENT,
} from './pattern.js';
export { type PushSink, RemoteSubscriber } from './remote.js';
