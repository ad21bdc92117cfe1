import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const LOG_FORMATS = ['json', 'pretty'] as const;

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
      description: 'seconds without traffic before a connection is closed (0 = never; decimals allowed)',
    }),
    maxConnections: Type.Integer({
      minimum: 1,
      default: 10000,
      description: 'connections over this get one error line and are closed',
    }),
    shutdownGrace: Type.Number({
      minimum: 0,
      maximum: MAX_SECONDS,
      default: 5,
      description: 'seconds a graceful shutdown waits before destroying what remains',
    }),
    maxLineBytes: Type.Integer({
      minimum: 64,
      default: 1048576,
      description: 'longest request line in bytes',
    }),
    maxDepth: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 64,
      description: 'deepest nesting of a value',
    }),
    logLevel: StringEnum(LOG_LEVELS, { default: 'info', description: 'log level' }),
    logFormat: StringEnum(LOG_FORMATS, { default: 'json', description: 'log format' }),
  },
  { additionalProperties: false },
);

export type Config = Readonly<Static<typeof ConfigSchema>>;
export type ConfigKey = keyof Config;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const CONFIG_KEYS = Object.keys(ConfigSchema.properties) as ConfigKey[];

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

const ajv = new Ajv({ useDefaults: true, allErrors: false });
const validate = ajv.compile<Static<typeof ConfigSchema>>(ConfigSchema);

// Plain decimal only: Number() would also take '', '0x10', 'Infinity' and ' 7 '.
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function coerce(schema: TSchema, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if ((schema.type === 'integer' || schema.type === 'number') && DECIMAL.test(value)) return Number(value);
  return value;
}

/** "must be an integer between 0 and 65535": one message per setting, whatever rule it broke. */
export function describeSetting(key: ConfigKey): string {
  const s = ConfigSchema.properties[key] as TSchema;
  if (s.enum) return `must be one of ${(s.enum as string[]).join(', ')}`;
  if (s.type === 'string') return 'must be a non-empty string';
  const kind = s.type === 'integer' ? 'an integer' : 'a number';
  const unit = key === 'idleTimeout' || key === 'shutdownGrace' ? ' (seconds)' : '';
  if (s.maximum !== undefined) return `must be ${kind} between ${s.minimum} and ${s.maximum}${unit}`;
  return `must be ${kind} >= ${s.minimum}${unit}`;
}

/** Merge the sources (defaults < file < env < flags), validate, and return a frozen Config. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const merged: Record<string, unknown> = {};
  const origin: Record<string, string> = {};
  const fileLabel = sources.fileName ?? 'config file';

  for (const [key, value] of Object.entries(sources.file ?? {})) {
    if (!(key in ConfigSchema.properties)) {
      throw new ConfigError(
        key,
        `${fileLabel}: ${key}`,
        `unknown setting (known: ${CONFIG_KEYS.join(', ')})`,
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
    throw new ConfigError(key, origin[key] ?? flagName(key), describeSetting(key));
  }
  return Object.freeze(merged as Static<typeof ConfigSchema>);
}
