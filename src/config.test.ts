import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, ConfigError, ConfigSchema, envName, flagName, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('returns the documented defaults, frozen', () => {
    const config = loadConfig();
    expect(config).toEqual({
      host: '127.0.0.1',
      port: 7171,
      idleTimeout: 300,
      store: 'memory',
      appendfsync: 'everysec',
      rewritePercentage: 100,
      rewriteMinSize: 33554432,
      maxConnections: 10000,
      maxConnectionsPerAddress: 1000,
      shutdownGrace: 5,
      maxLineBytes: 1048576,
      maxDepth: 64,
      subscriberBuffer: 1048576,
      slowSubscriber: 'drop',
      maxMessageBytes: 262144,
      maxChannelLength: 256,
      maxSubscriptions: 10000,
      maxPublishRate: 100000,
      logLevel: 'info',
      logFormat: 'json',
      protectedMode: true,
      preAuthMaxLineBytes: 65536,
      authFailureDelay: 0.25,
      authMaxFailures: 5,
      authMaxFailuresPerAddress: 20,
      authBlockSeconds: 60,
      authTimeout: 10,
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
    [{ file: { constructor: 1 }, fileName: 'caretkv.json' }, 'caretkv.json: constructor: unknown setting'],
    [{ flags: { protectedMode: 'maybe' } }, '--protected-mode: must be yes or no'],
    [{ env: { CARETKV_PROTECTED_MODE: 'maybe' } }, 'CARETKV_PROTECTED_MODE: must be yes or no'],
    // In JSON the value is a boolean: saying "yes or no" there would send the user the wrong way.
    [
      { file: { protectedMode: 'no' }, fileName: 'caretkv.json' },
      'caretkv.json: protectedMode: must be true or false',
    ],
    [{ flags: { tlsCert: 'c.pem' } }, '--tls-cert: --tls-cert and --tls-key go together'],
    [{ flags: { tlsPort: '7443' } }, '--tls-port: needs --tls-cert and --tls-key'],
    [
      { file: { users: { app: { password: 'hunter2', categories: [] } } }, fileName: 'caretkv.json' },
      'caretkv.json: users.app.password: must be a scrypt hash',
    ],
    [
      { file: { users: { app: { password: 'x', categories: ['reed'] } } }, fileName: 'caretkv.json' },
      'caretkv.json: users.app.categories[0]',
    ],
    [
      { file: { users: { app: { password: 'x', categories: [], colour: 1 } } }, fileName: 'caretkv.json' },
      'caretkv.json: users.app.colour: unknown field',
    ],
  ])('rejects %j with a message naming the source', (sources, message) => {
    expect(() => loadConfig(sources)).toThrow(ConfigError);
    expect(() => loadConfig(sources)).toThrow(message);
  });

  // Issue 14.4: names outside the documented syntax, `$server` (the server's stamp) first.
  it.each(['$server', 'two words', 'new\nline', 'caf\u00e9', 'x'.repeat(65), ''])(
    'refuses the user name %j, naming it',
    (name) => {
      const sources = {
        file: { users: { [name]: { password: 'x', categories: [] } } },
        fileName: 'caretkv.json',
      };
      expect(() => loadConfig(sources)).toThrow(ConfigError);
      expect(() => loadConfig(sources)).toThrow(
        `caretkv.json: users[${JSON.stringify(name)}]: a user name is 1 to 64 characters`,
      );
    },
  );

  it('refuses an unknown storage engine, naming the known ones', () => {
    expect(() => loadConfig({ flags: { store: 'etcd://h:7000' } })).toThrow(
      '--store: unknown storage engine "etcd" (known engines: memory, redis-cluster, redis)',
    );
    expect(() => loadConfig({ flags: { store: 'redis-cluster://h' } })).toThrow(
      '--store: redis-cluster:// needs host:port[,host:port...] (got "h")',
    );
    expect(loadConfig({ flags: { store: 'redis-cluster://h:7000,g:7001' } }).store).toBe(
      'redis-cluster://h:7000,g:7001',
    );
    expect(() => loadConfig({ flags: { store: 'redis://h:6379', dataDir: '/tmp/x' } })).toThrow(
      '--data-dir: persistence is for the memory engine; the redis engine keeps its data itself',
    );
    expect(() => loadConfig({ env: { CARETKV_STORE: 'nosuch' } })).toThrow(
      /^CARETKV_STORE: unknown storage engine/,
    );
    expect(loadConfig({ flags: { store: 'memory' } }).store).toBe('memory');
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
      ['--store', 'CARETKV_STORE'],
      ['--data-dir', 'CARETKV_DATA_DIR'],
      ['--appendfsync', 'CARETKV_APPENDFSYNC'],
      ['--rewrite-percentage', 'CARETKV_REWRITE_PERCENTAGE'],
      ['--rewrite-min-size', 'CARETKV_REWRITE_MIN_SIZE'],
      ['--max-connections', 'CARETKV_MAX_CONNECTIONS'],
      ['--max-connections-per-address', 'CARETKV_MAX_CONNECTIONS_PER_ADDRESS'],
      ['--shutdown-grace', 'CARETKV_SHUTDOWN_GRACE'],
      ['--max-line-bytes', 'CARETKV_MAX_LINE_BYTES'],
      ['--max-depth', 'CARETKV_MAX_DEPTH'],
      ['--subscriber-buffer', 'CARETKV_SUBSCRIBER_BUFFER'],
      ['--slow-subscriber', 'CARETKV_SLOW_SUBSCRIBER'],
      ['--max-message-bytes', 'CARETKV_MAX_MESSAGE_BYTES'],
      ['--max-channel-length', 'CARETKV_MAX_CHANNEL_LENGTH'],
      ['--max-subscriptions', 'CARETKV_MAX_SUBSCRIPTIONS'],
      ['--max-publish-rate', 'CARETKV_MAX_PUBLISH_RATE'],
      ['--log-level', 'CARETKV_LOG_LEVEL'],
      ['--log-format', 'CARETKV_LOG_FORMAT'],
      ['--protected-mode', 'CARETKV_PROTECTED_MODE'],
      ['--pre-auth-max-line-bytes', 'CARETKV_PRE_AUTH_MAX_LINE_BYTES'],
      ['--auth-failure-delay', 'CARETKV_AUTH_FAILURE_DELAY'],
      ['--auth-max-failures', 'CARETKV_AUTH_MAX_FAILURES'],
      ['--auth-max-failures-per-address', 'CARETKV_AUTH_MAX_FAILURES_PER_ADDRESS'],
      ['--auth-block-seconds', 'CARETKV_AUTH_BLOCK_SECONDS'],
      ['--auth-timeout', 'CARETKV_AUTH_TIMEOUT'],
      ['--tls-cert', 'CARETKV_TLS_CERT'],
      ['--tls-key', 'CARETKV_TLS_KEY'],
      ['--tls-ca', 'CARETKV_TLS_CA'],
      ['--tls-port', 'CARETKV_TLS_PORT'],
      ['--users', 'CARETKV_USERS'],
    ]);
  });

  it('gives every setting a description, and a default unless it is optional (TLS, users)', () => {
    const optional = new Set(['dataDir', 'tlsCert', 'tlsKey', 'tlsCa', 'tlsPort', 'users']);
    for (const [key, schema] of Object.entries(ConfigSchema.properties)) {
      expect(schema.description, key).toEqual(expect.any(String));
      if (!optional.has(key)) expect(schema.default, key).toBeDefined();
    }
  });

  it('keeps file-only settings (users) out of flags and the environment', () => {
    expect(CONFIG_KEYS).not.toContain('users');
    expect(() => loadConfig({ env: { CARETKV_USERS: '{}' } })).not.toThrow();
    expect(loadConfig({ env: { CARETKV_USERS: '{}' } }).users).toBeUndefined();
  });
});

describe('ConfigSchema', () => {
  // config.ts skips the meta-schema check at start-up (it costs start time); this is that check.
  it('is valid JSON Schema', () => {
    const ajv = new Ajv();
    const valid = ajv.validateSchema(ConfigSchema);
    expect(ajv.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });
});
