import { type Command, Option } from 'commander';
import { type ConfigKey, ConfigSchema, envName, flagName } from '../config.js';

const VALUE_NAMES: Partial<Record<ConfigKey, string>> = {
  idleTimeout: 'seconds',
  shutdownGrace: 'seconds',
  logLevel: 'level',
  logFormat: 'json|pretty',
  slowSubscriber: 'drop|disconnect',
  protectedMode: 'yes|no',
  authFailureDelay: 'seconds',
  authBlockSeconds: 'seconds',
  authTimeout: 'seconds',
  tlsCert: 'file',
  tlsKey: 'file',
  tlsCa: 'file',
  dataDir: 'dir',
  appendfsync: 'always|everysec|no',
  rewritePercentage: 'percent',
  rewriteMinSize: 'bytes',
};

/** A default as the help shows it: booleans as yes/no, optional settings as "none". */
function shownDefault(value: unknown): string {
  if (value === undefined) return 'none';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

/**
 * Add one flag per config setting, described from the schema. No commander defaults: an absent
 * flag must stay undefined so the environment (and later the config file) can supply it.
 */
export function addConfigOptions(command: Command, keys: readonly ConfigKey[]): Command {
  for (const key of keys) {
    const schema = ConfigSchema.properties[key];
    const value = VALUE_NAMES[key] ?? (schema.type === 'string' ? key.toLowerCase() : 'n');
    const choices = 'enum' in schema ? `, one of ${(schema.enum as string[]).join('|')}` : '';
    const help = `${schema.description}${choices} (default: ${shownDefault(schema.default)}; env ${envName(key)})`;
    command.addOption(new Option(`${flagName(key)} <${value}>`, help));
  }
  return command;
}

/** The settings table for `caretkv --help`: every flag with its environment variable and default. */
export function settingsHelp(keys: readonly ConfigKey[]): string {
  const rows = keys.map((key) => [
    flagName(key),
    envName(key),
    shownDefault(ConfigSchema.properties[key].default),
  ]);
  const widths = [0, 1].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map(
    ([flag, env, def]) => `  ${flag!.padEnd(widths[0]!)}  ${env!.padEnd(widths[1]!)}  ${def}`,
  );
  return `\nSettings (flag, environment variable, default; flags win over the environment, which wins over --config):\n${lines.join('\n')}\n`;
}
