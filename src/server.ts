import type { TlsOptions } from 'node:tls';
import { isLoopback, isLoopbackHost, normalizeAddress } from './auth/address.js';
import { Authority } from './auth/authority.js';
import { defaultCommandTable } from './commands/index.js';
import type { ReloadSummary } from './commands/table.js';
import { CONFIG_KEYS, type Config, ConfigError } from './config.js';
import { createProtocolHandler } from './handler.js';
import { createLogger, type Logger } from './log.js';
import { encodeError } from './protocol/codec.js';
import { ERRORS } from './protocol/errors.js';
import { NDJSON_PUSHES } from './protocol/pushes.js';
import { compileValidatorsSoon } from './protocol/validate.js';
import { Broker, type PubSubBroker } from './pubsub/broker.js';
import type { PubSub } from './pubsub/local.js';
import { RedisRelay } from './pubsub/redis-relay.js';
import { createStore } from './store/factory.js';
import { RedisStore } from './store/redis/engine.js';
import type { Store } from './store/store.js';
import { tlsOptions } from './tls.js';
import { AddressLimit } from './transport/address-limit.js';
import {
  type ListenAddress,
  type ShutdownSummary,
  Transport,
  type TransportStats,
} from './transport/listener.js';
import type { HandlerFactory } from './transport/types.js';

/** What a server is made of, handed to a custom handler (`ServerOptions.handler`). */
export interface ServerParts {
  readonly config: Config;
  readonly logger: Logger;
  readonly store: Store;
  readonly broker: PubSubBroker;
  readonly auth: Authority;
}

export interface ServerOptions {
  /**
   * Another protocol to speak instead of caretkv's JSON lines (e.g. `() => echoHandler`), built
   * from the server's parts: the store, broker and auth exist either way.
   */
  handler?: (parts: ServerParts) => HandlerFactory;
  /** The storage engine; default: the one `config.store` names. Closed when the server closes. */
  store?: Store;
  /** Defaults to a logger built from `config.logLevel` / `config.logFormat`. */
  logger?: Logger;
  /**
   * Re-reads the configuration (the CLI re-reads `--config` with the same env and flags). Given,
   * `reload()`, SIGHUP and CONFIG RELOAD apply new users, permissions and TLS certificates.
   */
  reloadConfig?: () => Config;
}

export interface CaretServer {
  /** Start accepting; resolves with the bound address (useful with port 0). Logs `listening`. */
  listen(): Promise<ListenAddress>;
  /**
   * Graceful shutdown (see Transport.close), then the store closes; logs and returns the summary.
   * Idempotent.
   */
  close(): Promise<ShutdownSummary>;
  readonly address: ListenAddress | null;
  /** The TLS listener's address when it runs beside the plain one (`tlsPort`); else null. */
  readonly tlsAddress: ListenAddress | null;
  readonly stats: TransportStats;
  /** Authentication state. */
  readonly auth: Authority;
  /**
   * Re-read the configuration (needs `reloadConfig`) and apply users, permissions and TLS material
   * to the running server. Rejects with the reason (a ConfigError) and changes nothing on a bad file.
   */
  reload(): Promise<ReloadSummary>;
  readonly logger: Logger;
  /** The store behind the protocol. */
  readonly store: Store;
  /** In-process pub/sub: subscribe, observe and publish as the server. */
  readonly pubsub: PubSub;
}

// Built once: every rejected connection gets the same bytes.
const TOO_MANY_CONNECTIONS_LINE = encodeError(undefined, 'TOO_MANY_CONNECTIONS', ERRORS.TOO_MANY_CONNECTIONS);
const TOO_MANY_FROM_ADDRESS_LINE = encodeError(
  undefined,
  'TOO_MANY_CONNECTIONS',
  'This address has as many connections open as one address may (--max-connections-per-address): close one, or raise the limit.',
);

/** Settings a reload applies to the running server; any other change waits for a restart. */
const LIVE_SETTINGS = new Set(['users', 'protectedMode', 'tlsCert', 'tlsKey', 'tlsCa']);

function sumStats(transports: readonly Transport[]): TransportStats {
  const total: TransportStats = {
    connections: 0,
    connectionsTotal: 0,
    connectionsRejected: 0,
    bytesIn: 0,
    bytesOut: 0,
  };
  for (const t of transports) {
    const s = t.stats;
    total.connections += s.connections;
    total.connectionsTotal += s.connectionsTotal;
    total.connectionsRejected += s.connectionsRejected;
    total.bytesIn += s.bytesIn;
    total.bytesOut += s.bytesOut;
  }
  return total;
}

/** The composition root: config + logger + store + auth + protocol handler + transports. */
export function createServer(config: Config, options: ServerOptions = {}): CaretServer {
  const logger = options.logger ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const store =
    options.store ??
    createStore(config.store, {
      logger: logger.child({ component: 'store' }),
      persistence:
        config.dataDir === undefined
          ? undefined
          : {
              dataDir: config.dataDir,
              appendfsync: config.appendfsync,
              rewritePercentage: config.rewritePercentage,
              rewriteMinSize: config.rewriteMinSize,
            },
    });
  const pubsubLogger = logger.child({ component: 'pubsub' });
  // Over Redis, publishes and subscriptions span the deployment's nodes (pubsub/redis-relay.ts).
  const relay = store instanceof RedisStore ? new RedisRelay(store.backend, pubsubLogger) : undefined;
  const broker: PubSubBroker = new Broker({
    pushes: NDJSON_PUSHES,
    logger: pubsubLogger,
    relay,
    limits: {
      subscriberBuffer: config.subscriberBuffer,
      slowSubscriber: config.slowSubscriber,
      maxMessageBytes: config.maxMessageBytes,
      maxChannelLength: config.maxChannelLength,
      maxSubscriptions: config.maxSubscriptions,
      maxPublishRate: config.maxPublishRate,
    },
  });
  store.onChange(broker.onStoreChange);
  store.onEventsLost?.(() => broker.backendLost());
  const table = defaultCommandTable();
  const authority = new Authority({
    table,
    users: config.users,
    log: logger.child({ component: 'auth' }),
    maxLineBytes: config.maxLineBytes,
    preAuthMaxLineBytes: config.preAuthMaxLineBytes,
    protectedMode: config.protectedMode,
    authFailureDelay: config.authFailureDelay,
    authMaxFailures: config.authMaxFailures,
    authMaxFailuresPerAddress: config.authMaxFailuresPerAddress,
    authBlockSeconds: config.authBlockSeconds,
    authTimeout: config.authTimeout,
  });
  const handler: HandlerFactory = options.handler
    ? options.handler({ config, logger, store, broker, auth: authority })
    : createProtocolHandler({
        store,
        broker,
        table,
        auth: () => authority,
        maxLineBytes: config.maxLineBytes,
        maxDepth: config.maxDepth,
        connections: () => sumStats(transports),
        ...(options.reloadConfig && { reload: () => reload() }),
      });

  // Counted as auth counts failures (IPv4-mapped IPv6 is IPv4); loopback is exempt: a local proxy
  // or load generator speaks for many clients.
  const perAddress = new AddressLimit(config.maxConnectionsPerAddress, (address) =>
    isLoopback(address) ? null : normalizeAddress(address),
  );
  const secure = tlsOptions(config);
  const transportFor = (port: number, tls: TlsOptions | undefined): Transport => {
    try {
      return new Transport({
        host: config.host,
        port,
        idleTimeout: config.idleTimeout,
        maxConnections: config.maxConnections,
        shutdownGrace: config.shutdownGrace,
        handler,
        logger,
        rejectMessage: TOO_MANY_CONNECTIONS_LINE,
        perAddress,
        perAddressRejectMessage: TOO_MANY_FROM_ADDRESS_LINE,
        ...(tls && { tls }),
      });
    } catch (err) {
      // Unparsable PEM, a key that does not match the certificate...
      throw new ConfigError(
        'tlsCert',
        '--tls-cert/--tls-key',
        `cannot use the TLS material: ${(err as Error).message}`,
      );
    }
  };
  // With --tls-port, TLS runs beside the plain port; without it, --port itself speaks TLS.
  const besides = secure !== undefined && config.tlsPort !== undefined;
  const transport = transportFor(config.port, besides ? undefined : secure);
  const tlsTransport = besides ? transportFor(config.tlsPort!, secure) : null;
  const transports = tlsTransport ? [transport, tlsTransport] : [transport];
  let current = config;
  let reloading: Promise<ReloadSummary> = Promise.resolve({ users: 0, tls: false, restartNeeded: [] });
  let closing: Promise<ShutdownSummary> | undefined;

  async function applyReload(): Promise<ReloadSummary> {
    if (!options.reloadConfig)
      throw new ConfigError('config', 'reload', 'the server was started without a config file');
    const next = options.reloadConfig();
    const restartNeeded = [...CONFIG_KEYS, 'users' as const].filter(
      (key) => !LIVE_SETTINGS.has(key) && JSON.stringify(next[key]) !== JSON.stringify(current[key]),
    );
    const tlsOn = transports.some((t) => t.tls);
    // Turning TLS or mutual TLS on or off changes the listeners themselves.
    if ((next.tlsCert === undefined) !== !tlsOn) restartNeeded.push('tlsCert');
    if ((next.tlsCa === undefined) !== (current.tlsCa === undefined)) restartNeeded.push('tlsCa');
    const material = tlsOn && next.tlsCert !== undefined ? tlsOptions(next) : undefined;
    if (material !== undefined) {
      for (const t of transports) {
        if (!t.tls) continue;
        try {
          t.setSecureContext(material);
        } catch (err) {
          throw new ConfigError(
            'tlsCert',
            '--tls-cert/--tls-key',
            `cannot use the TLS material: ${(err as Error).message}`,
          );
        }
      }
    }
    const { users } = authority.reload({ users: next.users, protectedMode: next.protectedMode });
    current = next;
    const summary = { users, tls: material !== undefined, restartNeeded };
    logger.info(summary, 'configuration reloaded');
    return summary;
  }

  function reload(): Promise<ReloadSummary> {
    // One at a time, in order: a SIGHUP during a CONFIG RELOAD waits for it.
    reloading = reloading.then(applyReload, applyReload);
    return reloading;
  }

  let stopCompiling: (() => void) | undefined;

  function warnAboutExposure(): void {
    if (authority.required) return;
    if (!config.protectedMode) {
      logger.warn(
        { host: config.host },
        'protected mode is off and no users are configured: anyone who can reach this port can read, write and drop everything',
      );
    } else if (!isLoopbackHost(config.host)) {
      logger.warn(
        { host: config.host },
        'protected mode: no users are configured, so only loopback clients will be accepted (configure users, see docs/security.md)',
      );
    }
  }

  return {
    logger,
    store,
    pubsub: broker.pubsub,
    auth: authority,
    reload,
    async listen() {
      warnAboutExposure();
      const address = await transport.listen();
      logger.info({ ...address, tls: transport.tls }, 'listening');
      if (tlsTransport) {
        try {
          const tlsAddress = await tlsTransport.listen();
          logger.info({ ...tlsAddress, tls: true }, 'listening');
        } catch (err) {
          await transport.close();
          throw err;
        }
      }
      // Request validators compile on first use; the rest compile now, between requests, so that
      // start-up does not wait for them (docs/benchmarks.md).
      stopCompiling ??= compileValidatorsSoon();
      return address;
    },
    close() {
      stopCompiling?.();
      // Subscribers hear it before their connections end; `$sys` is server-only, so it is real.
      if (closing === undefined) {
        broker.publishSystem(
          '$sys^shutdown',
          JSON.stringify({ graceMs: Math.round(config.shutdownGrace * 1000) }),
        );
      }
      closing ??= Promise.all(transports.map((t) => t.close())).then(async (summaries) => {
        // The relay first: no other node's message is delivered while the store closes the feed.
        await relay?.close();
        await store.close();
        const summary = summaries.reduce((a, b) => ({
          connections: a.connections + b.connections,
          graceful: a.graceful + b.graceful,
          destroyed: a.destroyed + b.destroyed,
          durationMs: Math.max(a.durationMs, b.durationMs),
        }));
        logger.info(summary, 'shutdown complete');
        return summary;
      });
      return closing;
    },
    get address() {
      return transport.address;
    },
    get tlsAddress() {
      return tlsTransport?.address ?? null;
    },
    get stats() {
      return sumStats(transports);
    },
  };
}
