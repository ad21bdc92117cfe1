/**
 * TLS material from the config: read at start and on reload (never per connection), so a renewed
 * certificate is picked up by SIGHUP / CONFIG RELOAD without a restart.
 */
import { readFileSync } from 'node:fs';
import type { TlsOptions } from 'node:tls';
import { type Config, ConfigError, flagName } from './config.js';

function read(config: Config, key: 'tlsCert' | 'tlsKey' | 'tlsCa'): Buffer {
  const path = config[key]!;
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(key, flagName(key), `cannot read ${JSON.stringify(path)} (${code})`);
  }
}

/** The listener's TLS options, or undefined when TLS is not configured. */
export function tlsOptions(config: Config): TlsOptions | undefined {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return undefined;
  const options: TlsOptions = {
    cert: read(config, 'tlsCert'),
    key: read(config, 'tlsKey'),
    minVersion: 'TLSv1.2',
  };
  if (config.tlsCa !== undefined) {
    // Mutual TLS: a client must present a certificate signed by this CA, or the handshake fails.
    options.ca = read(config, 'tlsCa');
    options.requestCert = true;
    options.rejectUnauthorized = true;
  }
  return options;
}
