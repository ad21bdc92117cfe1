import type { ErrorCode } from '../protocol/errors.js';

/**
 * Failures the client itself detects, never sent by a server. Like the protocol catalogue
 * (src/protocol/errors.ts), callers branch on the code; each message says what to do.
 */
export const CLIENT_ERRORS = {
  CONNECT_FAILED:
    'Could not connect to the server. Check host and port, or pass retryFirstConnect: true to keep trying.',
  CONNECT_TIMEOUT:
    'The connection attempt took longer than connectTimeout. Raise connectTimeout or check the network.',
  CONNECTION_CLOSED:
    'The client is closed or closing (close()/destroy(), or retryStrategy gave up); the request was not sent.',
  CONNECTION_LOST:
    'The connection dropped while the request was in flight; it may or may not have run. Retry it if it is idempotent, or set replayInFlight: true.',
  TIMEOUT:
    'No response within requestTimeout; the late response will be discarded. Raise requestTimeout if the server is just slow.',
  OFFLINE_QUEUE_FULL:
    'The client is not connected and its offline queue is full. Wait for the "ready" event, or raise maxOfflineQueue.',
  MAX_RETRIES:
    'The request waited through more reconnect attempts than maxRetriesPerRequest allows. Raise maxRetriesPerRequest (null: no limit).',
  PROTOCOL_ERROR: 'The server sent a line that is not a valid response; the connection was reset.',
  INVALID_ARGUMENT: 'The request could not be encoded as JSON (e.g. a BigInt or a cyclic value).',
  SUBSCRIPTION_REVOKED:
    'The server ended the subscription: the user may no longer hold its patterns (a permissions change, reason above). Ask the administrator for the permission, or subscribe to what the user may hold.',
} as const;

export type ClientErrorCode = keyof typeof CLIENT_ERRORS;

/** Every code a `CaretError` can carry: the server's catalogue plus the client's own. */
export type CaretErrorCode = ErrorCode | ClientErrorCode;

/**
 * The one error type the client rejects with. `code` is stable (branch on it); `action` names the
 * request that failed, and the message starts with it so that a log line is enough to know which
 * call broke. A server may be newer than this client and send a code it does not know yet, so the
 * type leaves room for other strings.
 */
export class CaretError extends Error {
  override name = 'CaretError';
  readonly code: CaretErrorCode | (string & {});
  /** The request's action (e.g. 'GET'), when the error belongs to a request. */
  readonly action: string | undefined;
  /** The request's key, when it had one. */
  readonly key: string | undefined;

  constructor(
    code: CaretErrorCode | (string & {}),
    message: string,
    options: { action?: string | undefined; key?: string | undefined; cause?: unknown } = {},
  ) {
    const prefix = options.action
      ? `${options.action}${options.key === undefined ? '' : ` ${options.key}`}: `
      : '';
    super(
      `${prefix}${message} [${code}]`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.action = options.action;
    this.key = options.key;
  }
}

/** A client-side failure with the catalogue's message, optionally followed by a detail. */
export function clientError(
  code: ClientErrorCode,
  action?: string,
  key?: string,
  detail?: string,
  cause?: unknown,
): CaretError {
  const message = detail ? `${detail}. ${CLIENT_ERRORS[code]}` : CLIENT_ERRORS[code];
  return new CaretError(code, message, { action, key, cause });
}
