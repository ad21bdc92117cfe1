import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';

/** TLS settings for `tls` (the usual `tls.connect` options; `caretkvs://` URLs turn TLS on). */
export type TlsOptions = Pick<
  TlsConnectionOptions,
  | 'ca'
  | 'cert'
  | 'key'
  | 'passphrase'
  | 'pfx'
  | 'rejectUnauthorized'
  | 'servername'
  | 'minVersion'
  | 'checkServerIdentity'
>;

/** Where the client connects and how it behaves when the connection is slow, gone or back. */
export interface ClientOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 7171. */
  port?: number;
  /**
   * Milliseconds from the call until a request must have settled (queue time included), after
   * which it rejects with TIMEOUT. 0 disables. Default 10 000.
   */
  requestTimeout?: number;
  /** Milliseconds one TCP connection attempt may take. Default 10 000. */
  connectTimeout?: number;
  /**
   * How many requests may wait while the client is (re)connecting; past it a request rejects with
   * OFFLINE_QUEUE_FULL at once. 0 rejects every request made while not connected. Default 10 000.
   */
  maxOfflineQueue?: number;
  /**
   * Milliseconds to wait before reconnect attempt number `attempt` (1-based), or null to give up
   * (the client closes and everything pending rejects). Default: capped exponential backoff with
   * jitter, see `defaultRetryStrategy`.
   */
  retryStrategy?: (attempt: number) => number | null;
  /**
   * How many failed reconnect attempts a queued request waits through before it rejects with
   * MAX_RETRIES. null: no limit (only requestTimeout bounds it). Default 20.
   */
  maxRetriesPerRequest?: number | null;
  /**
   * Re-send requests that were in flight when the connection dropped, after reconnecting. Off by
   * default because such a request may already have run (an INCR would count twice); when off they
   * reject with CONNECTION_LOST. Requests known not to have left the client are always re-sent.
   */
  replayInFlight?: boolean;
  /** Do not connect until the first request or `connect()`. Default false. */
  lazyConnect?: boolean;
  /**
   * When the very first connection attempt fails, keep retrying per retryStrategy instead of
   * rejecting `connect()` at once. Default false: a wrong address fails fast.
   */
  retryFirstConnect?: boolean;
  /** TCP keepalive initial delay in ms (finds dead peers on idle connections). 0 disables. Default 30 000. */
  keepAlive?: number;
  /** Disable Nagle's algorithm. Default true: requests are already coalesced per tick. */
  noDelay?: boolean;
  /**
   * Speak TLS: `true` for the system's trusted CAs, or options (`ca` for a private CA, `cert` +
   * `key` for mutual TLS, `rejectUnauthorized`). A `caretkvs://` URL implies `true`.
   */
  tls?: boolean | TlsOptions;
  /**
   * Authenticate as this user (with `password`) on every connection, before any request: AUTH is
   * the first request after each (re)connect. `caretkv://user:password@host` sets both.
   */
  user?: string;
  password?: string;
}

export interface ResolvedOptions {
  host: string;
  port: number;
  requestTimeout: number;
  connectTimeout: number;
  maxOfflineQueue: number;
  retryStrategy: (attempt: number) => number | null;
  maxRetriesPerRequest: number;
  replayInFlight: boolean;
  lazyConnect: boolean;
  retryFirstConnect: boolean;
  keepAlive: number;
  noDelay: boolean;
  /** null: plain TCP. */
  tls: TlsOptions | null;
  user: string | undefined;
  password: string | undefined;
}

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 7171;

/**
 * Exponential backoff from 50 ms, capped at 2 s, with "equal jitter": half the delay is fixed and
 * half random, so a server restart is not met by every client reconnecting in the same instant,
 * while no client waits much less than the backoff intends.
 */
export function defaultRetryStrategy(attempt: number): number {
  const base = Math.min(2000, 50 * 2 ** Math.min(attempt - 1, 16));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * Parse 'caretkv://host:port' or 'caretkvs://host:port' (TLS), either part optional, with optional
 * credentials: 'caretkvs://user:password@host:port' (percent-encoded).
 */
export function parseUrl(url: string): {
  host: string;
  port: number;
  tls?: true;
  user?: string;
  password?: string;
} {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Never echo the URL: it may carry a password.
    throw new TypeError('caretkv: invalid URL; expected caretkv://host:port or caretkvs://host:port');
  }
  if (parsed.protocol !== 'caretkv:' && parsed.protocol !== 'caretkvs:') {
    throw new TypeError(
      `caretkv: unsupported URL scheme ${JSON.stringify(parsed.protocol)}; expected caretkv://host:port or caretkvs://host:port`,
    );
  }
  // WHATWG URL keeps brackets around IPv6 hosts; net.connect wants them bare.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || DEFAULT_HOST;
  const port = parsed.port === '' ? DEFAULT_PORT : Number(parsed.port);
  const result: ReturnType<typeof parseUrl> = { host, port };
  if (parsed.protocol === 'caretkvs:') result.tls = true;
  if (parsed.username !== '') result.user = decodeURIComponent(parsed.username);
  if (parsed.password !== '') result.password = decodeURIComponent(parsed.password);
  return result;
}

function nonNegative(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new TypeError(`caretkv: option ${name} must be a non-negative number, got ${String(value)}`);
  }
  return value;
}

export function resolveOptions(
  urlOrOptions?: string | ClientOptions,
  extra?: ClientOptions,
): ResolvedOptions {
  const fromUrl = typeof urlOrOptions === 'string' ? parseUrl(urlOrOptions) : {};
  const o: ClientOptions = {
    ...(typeof urlOrOptions === 'object' ? urlOrOptions : {}),
    ...fromUrl,
    ...extra,
  };
  const port = o.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`caretkv: port must be an integer 0-65535, got ${String(port)}`);
  }
  if ((o.user === undefined) !== (o.password === undefined)) {
    throw new TypeError('caretkv: options user and password go together');
  }
  if (o.retryStrategy !== undefined && typeof o.retryStrategy !== 'function') {
    throw new TypeError('caretkv: option retryStrategy must be a function (attempt) => ms | null');
  }
  return {
    host: o.host ?? DEFAULT_HOST,
    port,
    requestTimeout: nonNegative('requestTimeout', o.requestTimeout, 10_000),
    connectTimeout: nonNegative('connectTimeout', o.connectTimeout, 10_000),
    maxOfflineQueue: nonNegative('maxOfflineQueue', o.maxOfflineQueue, 10_000),
    retryStrategy: o.retryStrategy ?? defaultRetryStrategy,
    maxRetriesPerRequest:
      o.maxRetriesPerRequest === null
        ? Number.POSITIVE_INFINITY
        : nonNegative('maxRetriesPerRequest', o.maxRetriesPerRequest, 20),
    replayInFlight: o.replayInFlight ?? false,
    lazyConnect: o.lazyConnect ?? false,
    retryFirstConnect: o.retryFirstConnect ?? false,
    keepAlive: nonNegative('keepAlive', o.keepAlive, 30_000),
    noDelay: o.noDelay ?? true,
    tls: o.tls === true ? {} : o.tls === undefined || o.tls === false ? null : o.tls,
    user: o.user,
    password: o.password,
  };
}
