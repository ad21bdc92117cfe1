import { describe, expect, it } from 'vitest';
import { ConfigError, ConfigSchema, envName, flagName, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('returns the documented defaults, frozen', () => {
    const config = loadConfig();
    expect(config).toEqual({
      host: '127.0.0.1',
      port: 7171,
      idleTimeout: 300,
      maxConnections: 10000,
      shutdownGrace: 5,
      maxLineBytes: 1048576,
      maxDepth: 64,
      logLevel: 'info',
      logFormat: 'json',
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('layers defaults < file < env < flags', () => {
    const config = loadConfig({
      file: { port: 1000, host: '0.0.0.0', maxDepth: 10 },
      env: { CARETKV_PORT: '2000', CARETKV_HOST: '::1' },
      flags: { port: '3000' },
    });
    expect(config).toMatchObject({ port: 3000, host: '::1', maxDepth: 10, shutdownGrace: 5 });
  });

  it('reads every setting from CARETKV_<UPPER_SNAKE>, coercing numbers', () => {
    const config = loadConfig({
      env: {
        CARETKV_IDLE_TIMEOUT: '0.25',
        CARETKV_MAX_CONNECTIONS: '5',
        CARETKV_SHUTDOWN_GRACE: '1.5',
        CARETKV_MAX_LINE_BYTES: '4096',
        CARETKV_MAX_DEPTH: '8',
        CARETKV_LOG_LEVEL: 'debug',
        CARETKV_LOG_FORMAT: 'pretty',
        UNRELATED: 'x',
      },
    });
    expect(config).toMatchObject({
      idleTimeout: 0.25,
      maxConnections: 5,
      shutdownGrace: 1.5,
      maxLineBytes: 4096,
      maxDepth: 8,
      logLevel: 'debug',
      logFormat: 'pretty',
    });
  });

  it('ignores flags that were not given', () => {
    expect(loadConfig({ env: { CARETKV_PORT: '9' }, flags: { port: undefined } }).port).toBe(9);
  });

  it.each([
    [{ flags: { port: '70000' } }, '--port: must be an integer between 0 and 65535'],
    [{ flags: { port: 'abc' } }, '--port: must be an integer between 0 and 65535'],
    [{ flags: { port: '' } }, '--port: must be an integer between 0 and 65535'],
    [{ flags: { port: '0x10' } }, '--port: must be an integer between 0 and 65535'],
    [{ flags: { port: '80.5' } }, '--port: must be an integer between 0 and 65535'],
    [{ env: { CARETKV_PORT: '-1' } }, 'CARETKV_PORT: must be an integer between 0 and 65535'],
    [{ flags: { idleTimeout: '-1' } }, '--idle-timeout: must be a number between 0 and 2147483 (seconds)'],
    [{ flags: { idleTimeout: '1e9' } }, '--idle-timeout: must be a number between 0 and 2147483 (seconds)'],
    [{ flags: { maxConnections: '0' } }, '--max-connections: must be an integer >= 1'],
    [{ flags: { logFormat: 'xml' } }, '--log-format: must be one of json, pretty'],
    [
      { flags: { logLevel: 'loud' } },
      '--log-level: must be one of fatal, error, warn, info, debug, trace, silent',
    ],
    [{ flags: { host: '' } }, '--host: must be a non-empty string'],
    [
      { file: { port: 'x' }, fileName: 'caretkv.json' },
      'caretkv.json: port: must be an integer between 0 and 65535',
    ],
    [{ file: { prot: 1 }, fileName: 'caretkv.json' }, 'caretkv.json: prot: unknown setting'],
  ])('rejects %j with a message naming the source', (sources, message) => {
    expect(() => loadConfig(sources)).toThrow(ConfigError);
    expect(() => loadConfig(sources)).toThrow(message);
  });

  it('blames the source that won, not one that was overridden', () => {
    expect(() => loadConfig({ env: { CARETKV_PORT: 'bad' }, flags: { port: '1' } })).not.toThrow();
    expect(() => loadConfig({ env: { CARETKV_PORT: '1' }, flags: { port: 'bad' } })).toThrow(/^--port:/);
  });

  it('accepts typed values from a file without coercion', () => {
    expect(() => loadConfig({ file: { port: '7000' } })).toThrow(/port: must be an integer/);
    expect(loadConfig({ file: { idleTimeout: 0.5 } }).idleTimeout).toBe(0.5);
  });
});

describe('names derived from the schema', () => {
  it('maps every setting to a flag and an environment variable', () => {
    expect(Object.keys(ConfigSchema.properties).map((key) => [flagName(key), envName(key)])).toEqual([
      ['--host', 'CARETKV_HOST'],
      ['--port', 'CARETKV_PORT'],
      ['--idle-timeout', 'CARETKV_IDLE_TIMEOUT'],
      ['--max-connections', 'CARETKV_MAX_CONNECTIONS'],
      ['--shutdown-grace', 'CARETKV_SHUTDOWN_GRACE'],
      ['--max-line-bytes', 'CARETKV_MAX_LINE_BYTES'],
      ['--max-depth', 'CARETKV_MAX_DEPTH'],
      ['--log-level', 'CARETKV_LOG_LEVEL'],
      ['--log-format', 'CARETKV_LOG_FORMAT'],
    ]);
  });

  it('gives every setting a description and a default', () => {
    for (const schema of Object.values(ConfigSchema.properties)) {
      expect(schema.description).toEqual(expect.any(String));
      expect(schema.default).toBeDefined();
    }
  });
});
