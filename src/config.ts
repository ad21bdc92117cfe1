import { readFileSync } from 'node:fs';
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { compileUsers, UserConfigError, UsersSchema } from './auth/users.js';
import { LIMITS } from './protocol/schema.js';
import { formatError } from './protocol/validate.js';
import { DEFAULT_BROKER_LIMITS } from './pubsub/limits.js';
import { FSYNC_POLICIES } from './store/durable/writer.js';
import { parseStoreSpec } from './store/factory.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const LOG_FORMATS = ['json', 'pretty'] as const;
const SLOW_SUBSCRIBER = ['drop', 'disconnect'] as const;

// setTimeout clamps anything above 2^31-1 ms to 1 ms (with only a warning), which would turn
// "practically never" into "immediately"; cap second-valued settings below that.
const MAX_SECONDS = 2_147_483;

function StringEnum<const T extends readonly string[]>(
  values: T,
  options: { description: string; default: T[number] },
) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/**
 * Every setting, once: its type, bounds, default and help text. The CLI flags, the environment
 * variables, the config file and the error messages are all derived from this schema.
 */
export const ConfigSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, default: '127.0.0.1', description: 'address to listen on' }),
    port: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: 7171,
      description: 'TCP port (0 picks a free one)',
    }),
    idleTimeout: Type.Number({
      minimum: 0,
      maximum: MAX_SECONDS,
      default: 300,
      description:
        'seconds without traffic before a connection is closed (0 = never; decimals allowed); connections with subscriptions or observations are exempt',
    }),
    store: Type.String({
      minLength: 1,
      default: 'memory',
      description:
        'storage engine: memory (in this process, the default), redis-cluster://host:port,... (a Redis Cluster; see docs/cluster.md) or redis://host:port (one Redis server)',
    }),
    dataDir: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'directory of the append-only log: turns persistence on (without it, keys live only in memory)',
      }),
    ),
    appendfsync: StringEnum(FSYNC_POLICIES, {
      default: 'everysec',
      description:
        'when the log reaches the disk: before each write is answered (always), once a second (everysec) or when the OS decides (no)',
    }),
    rewritePercentage: Type.Integer({
      minimum: 0,
      default: 100,
      description:
        'rewrite the log when its incremental files outgrow the base by this percentage (0 = only on REWRITE)',
    }),
    rewriteMinSize: Type.Integer({
      minimum: 0,
      // Half Redis's 64 MB: with the default percentage the log then stays within 2x the base
      // + 64 MiB even while a rewrite runs (it may grow 32 MiB more before the rewrite ends).
      default: 32 * 1024 * 1024,
      description: 'bytes the incremental files must reach before an automatic rewrite',
    }),
    maxConnections: Type.Integer({
      minimum: 1,
      default: 10000,
      description: 'connections over this get one error line and are closed',
    }),
    maxConnectionsPerAddress: Type.Integer({
      minimum: 0,
      default: 1000,
      description:
        'connections from one non-loopback address over this get one error line and are closed (0 = no limit)',
    }),
    shutdownGrace: Type.Number({
      minimum: 0,
      maximum: MAX_SECONDS,
      default: 5,
      description:
        'seconds a graceful shutdown lets requests in flight finish; idle connections close as soon as their output (and the notice) is flushed',
    }),
    maxLineBytes: Type.Integer({
      minimum: 64,
      default: LIMITS.defaultMaxLineBytes,
      description: 'longest request line in bytes',
    }),
    maxDepth: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: LIMITS.defaultMaxDepth,
      description: 'deepest nesting of a request line, the request object counting as one level',
    }),
    subscriberBuffer: Type.Integer({
      minimum: 1024,
      default: DEFAULT_BROKER_LIMITS.subscriberBuffer,
      description: 'pending output bytes over which a pub/sub subscriber is treated as slow',
    }),
    slowSubscriber: StringEnum(SLOW_SUBSCRIBER, {
      default: DEFAULT_BROKER_LIMITS.slowSubscriber,
      description: 'a slow subscriber has pushes dropped (then a gap event) or is disconnected',
    }),
    maxMessageBytes: Type.Integer({
      minimum: 1,
      default: DEFAULT_BROKER_LIMITS.maxMessageBytes,
      description: 'largest PUBLISH message in bytes (as JSON)',
    }),
    maxChannelLength: Type.Integer({
      minimum: 1,
      maximum: 1024,
      default: DEFAULT_BROKER_LIMITS.maxChannelLength,
      description: 'longest channel name or pattern, in characters',
    }),
    maxSubscriptions: Type.Integer({
      minimum: 1,
      default: DEFAULT_BROKER_LIMITS.maxSubscriptions,
      description: 'most subscriptions plus observations per connection',
    }),
    maxPublishRate: Type.Integer({
      minimum: 0,
      default: DEFAULT_BROKER_LIMITS.maxPublishRate,
      description: 'publishes per second per connection (0 = unlimited)',
    }),
    logLevel: StringEnum(LOG_LEVELS, { default: 'info', description: 'least severe level that is logged' }),
    logFormat: StringEnum(LOG_FORMATS, {
      default: 'json',
      description: 'log lines on stdout: one JSON object each, or pretty-printed for a terminal',
    }),
    protectedMode: Type.Boolean({
      default: true,
      description:
        'with no users configured and a non-loopback --host, refuse clients that are not on loopback',
    }),
    preAuthMaxLineBytes: Type.Integer({
      minimum: 64,
      default: 65536,
      description: 'longest request line in bytes before a connection has authenticated',
    }),
    authFailureDelay: Type.Number({
      minimum: 0,
      maximum: 60,
      default: 0.25,
      description: 'seconds before a failed AUTH is answered; doubles with each failure on the connection',
    }),
    authMaxFailures: Type.Integer({
      minimum: 1,
      default: 5,
      description: 'failed AUTH attempts after which the connection is closed',
    }),
    authMaxFailuresPerAddress: Type.Integer({
      minimum: 1,
      default: 20,
      description: 'failed AUTH attempts from one address within --auth-block-seconds before it is refused',
    }),
    authBlockSeconds: Type.Number({
      minimum: 0,
      maximum: MAX_SECONDS,
      default: 60,
      description: 'window for counting failures per address, and how long a refused address stays refused',
    }),
    authTimeout: Type.Number({
      minimum: 0,
      maximum: MAX_SECONDS,
      default: 10,
      description:
        'seconds a connection may stay unauthenticated on a server with users before it is told and closed (0 = never)',
    }),
    tlsCert: Type.Optional(
      Type.String({ minLength: 1, description: 'PEM certificate (chain) file: serve TLS (with --tls-key)' }),
    ),
    tlsKey: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key file for --tls-cert' })),
    tlsCa: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'PEM CA file: require client certificates signed by it (mutual TLS)',
      }),
    ),
    tlsPort: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 65535,
        description: 'serve TLS on this port beside plain --port (without it, --port itself speaks TLS)',
      }),
    ),
    users: Type.Optional(UsersSchema),
  },
  { additionalProperties: false },
);

export type Config = Readonly<Static<typeof ConfigSchema>>;
export type ConfigKey = keyof Config;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Settings that live only in the config file (structured values no flag could carry). */
export const FILE_ONLY_KEYS: readonly ConfigKey[] = ['users'];
/** Settings with a flag and an environment variable. */
export const CONFIG_KEYS = (Object.keys(ConfigSchema.properties) as ConfigKey[]).filter(
  (key) => !FILE_ONLY_KEYS.includes(key),
);

/**
 * Where settings come from, weakest first: schema defaults < file < env < flags.
 * `file` holds typed JSON values; `env` and `flags` may hold strings, which are coerced by the schema's type.
 */
export interface ConfigSources {
  file?: Record<string, unknown>;
  /** The file's name, for error messages. */
  fileName?: string;
  env?: Record<string, string | undefined>;
  flags?: Record<string, unknown>;
}

/** A setting failed validation; `message` names where it came from (`--port: must be ...`). */
export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    readonly origin: string,
    reason: string,
  ) {
    super(`${origin}: ${reason}`);
    this.name = 'ConfigError';
  }
}

export const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
export const envName = (key: string): string =>
  `CARETKV_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

// validateSchema: the meta-schema check runs in config.test.ts instead of at every start (~30 ms).
const ajv = new Ajv({ useDefaults: true, allErrors: false, validateSchema: false });
const validate = ajv.compile<Static<typeof ConfigSchema>>(ConfigSchema);

// Plain decimal only: Number() would also take '', '0x10', 'Infinity' and ' 7 '.
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

const BOOLEAN_WORDS: Record<string, boolean> = {
  yes: true,
  no: false,
  true: true,
  false: false,
  on: true,
  off: false,
};

function coerce(schema: TSchema, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if ((schema.type === 'integer' || schema.type === 'number') && DECIMAL.test(value)) return Number(value);
  if (schema.type === 'boolean') return BOOLEAN_WORDS[value.toLowerCase()] ?? value;
  return value;
}

const SECONDS_KEYS: readonly ConfigKey[] = [
  'idleTimeout',
  'shutdownGrace',
  'authFailureDelay',
  'authBlockSeconds',
  'authTimeout',
];

/** "must be an integer between 0 and 65535": one message per setting, whatever rule it broke. */
export function describeSetting(key: ConfigKey, inFile = false): string {
  const s = ConfigSchema.properties[key] as TSchema;
  if (s.enum) return `must be one of ${(s.enum as string[]).join(', ')}`;
  // A flag or variable says yes/no; a JSON file says true/false.
  if (s.type === 'boolean') return inFile ? 'must be true or false' : 'must be yes or no';
  if (s.type === 'string') return 'must be a non-empty string';
  const kind = s.type === 'integer' ? 'an integer' : 'a number';
  const unit = SECONDS_KEYS.includes(key) ? ' (seconds)' : '';
  if (s.maximum !== undefined) return `must be ${kind} between ${s.minimum} and ${s.maximum}${unit}`;
  return `must be ${kind} >= ${s.minimum}${unit}`;
}

/** Merge the sources (defaults < file < env < flags), validate, and return a frozen Config. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const merged: Record<string, unknown> = {};
  const origin: Record<string, string> = {};
  const fileLabel = sources.fileName ?? 'config file';

  for (const [key, value] of Object.entries(sources.file ?? {})) {
    if (!Object.hasOwn(ConfigSchema.properties, key)) {
      throw new ConfigError(
        key,
        `${fileLabel}: ${key}`,
        `unknown setting (known: ${Object.keys(ConfigSchema.properties).join(', ')})`,
      );
    }
    merged[key] = value;
    origin[key] = `${fileLabel}: ${key}`;
  }
  for (const key of CONFIG_KEYS) {
    const schema = ConfigSchema.properties[key] as TSchema;
    const fromEnv = sources.env?.[envName(key)];
    if (fromEnv !== undefined) {
      merged[key] = coerce(schema, fromEnv);
      origin[key] = envName(key);
    }
    const fromFlag = sources.flags?.[key];
    if (fromFlag !== undefined) {
      merged[key] = coerce(schema, fromFlag);
      origin[key] = flagName(key);
    }
  }

  if (!validate(merged)) {
    const error = validate.errors?.[0];
    const key = (error?.instancePath.split('/')[1] ?? '') as ConfigKey;
    if (!(key in ConfigSchema.properties)) throw new ConfigError(key, 'config', error?.message ?? 'invalid');
    if (FILE_ONLY_KEYS.includes(key) && error !== undefined) {
      // Structured settings: name the exact field (`users.app.read[0]: must be a string`).
      throw new ConfigError(key, fileLabel, formatError(error));
    }
    const where = origin[key] ?? flagName(key);
    throw new ConfigError(key, where, describeSetting(key, where === `${fileLabel}: ${key}`));
  }
  const config = merged as Static<typeof ConfigSchema>;
  const engine = parseStoreSpec(config.store);
  if (typeof engine === 'string') throw new ConfigError('store', origin.store ?? flagName('store'), engine);
  if (config.dataDir !== undefined && engine.engine !== 'memory') {
    throw new ConfigError(
      'dataDir',
      origin.dataDir ?? flagName('dataDir'),
      `persistence is for the memory engine; the ${engine.engine} engine keeps its data itself`,
    );
  }
  try {
    compileUsers(config.users);
  } catch (err) {
    if (err instanceof UserConfigError) throw new ConfigError('users', fileLabel, err.message);
    throw err;
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    const given = config.tlsCert === undefined ? 'tlsKey' : 'tlsCert';
    throw new ConfigError(given, origin[given] ?? flagName(given), '--tls-cert and --tls-key go together');
  }
  for (const key of ['tlsCa', 'tlsPort'] as const) {
    if (config[key] !== undefined && config.tlsCert === undefined) {
      throw new ConfigError(key, origin[key] ?? flagName(key), 'needs --tls-cert and --tls-key');
    }
  }
  return Object.freeze(config);
}

/**
 * Reads a JSON config file for `loadConfig({ file })`. Its keys are the settings' names
 * (`maxConnections`, `users`...), validated by the same schema as flags.
 */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      'config',
      path,
      `cannot read the config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('config', path, `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError('config', path, 'must hold a JSON object of settings');
  }
  return value as Record<string, unknown>;
}
