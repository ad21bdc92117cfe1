/**
 * The error catalogue: every code a client can receive, with its meaning.
 * Clients branch on `code`, never on `message`. Every code here is documented in docs/protocol.md
 * (a test checks it). Messages say what to do.
 */
export const ERRORS = {
  BAD_JSON: 'The line is not valid JSON (or not valid UTF-8). Send one JSON object per line.',
  BAD_REQUEST: 'The request does not match the action schema; the message names the field.',
  UNKNOWN_ACTION: 'No such action. Send {"action":"HELP"} or see docs/protocol.md for the list.',
  BAD_KEY: 'The key or namespace path is malformed (empty segment, too long, too deep).',
  KEY_NOT_FOUND: 'The key does not exist (or has expired).',
  WRONG_TYPE: 'The stored value has the wrong type for this action (e.g. INCR on a non-number).',
  OVERFLOW: 'The result would leave the range of exactly representable integers (|n| > 2^53 - 1).',
  LINE_TOO_LONG:
    'The line exceeded the server line limit and was discarded. Split the value or raise --max-line-bytes.',
  TOO_DEEP: 'The value is nested deeper than the server allows.',
  INTERNAL: 'An unexpected server fault; it was logged. The connection stays usable.',
  SHUTTING_DOWN: 'The server is shutting down and takes no new requests. Reconnect later.',
  TOO_MANY_CONNECTIONS:
    'The server is at its connection limit and closed this connection. Retry later, or raise --max-connections.',
  NOAUTH:
    'The server requires authentication: send {"action":"AUTH","user":...,"password":...} first. Until then only PING, HELLO and AUTH run.',
  AUTH_TIMEOUT:
    'No successful AUTH within --auth-timeout seconds of connecting: the connection is closed. Reconnect and send AUTH first.',
  AUTH_FAILED:
    'Unknown user or wrong password (the two are indistinguishable on purpose). Failures are slowed, and repeated ones close the connection and refuse the address for a while.',
  NOPERM:
    "The authenticated user lacks the permission this request needs; the message names the action and the key or channel. Ask the administrator to extend the user's permissions in the config file. Channels whose first segment starts with $ belong to the server: no client may publish there.",
  BAD_CHANNEL:
    'The channel or channel pattern is malformed (empty segment, ">" not last, a wildcard in a PUBLISH channel, too long).',
  MESSAGE_TOO_LARGE:
    'The message is larger than the server allows. Publish a reference to the data instead, or raise --max-message-bytes.',
  TOO_MANY_SUBSCRIPTIONS:
    'The connection would hold more subscriptions and observations than allowed. Unsubscribe some, use a wildcard pattern, or raise --max-subscriptions.',
  RATE_LIMITED:
    'Too many requests or failed attempts in a short time; the message says which limit. Slow down and retry later.',
  PROTECTED_MODE:
    'The server has no users configured and listens beyond loopback, so it only accepts loopback clients. Configure users (docs/security.md) or start it with --protected-mode no.',
  DISK_ERROR:
    'The server cannot write its log (disk full, I/O error, read-only directory): writes are refused until it can, reads go on. A write answered DISK_ERROR may or may not have taken effect, as after a timeout; retry it once INFO shows persistence.diskError null.',
  PERSISTENCE_OFF:
    'The server keeps no log (it was started without --data-dir), so there is nothing to rewrite or back up. Start it with --data-dir DIR.',
  UNAVAILABLE:
    'The storage backend (Redis) is down or did not answer in time (connection lost, CLUSTERDOWN, a timeout). The request may or may not have taken effect, as after a timeout; retry later.',
  CROSS_NAMESPACE:
    'On the Redis Cluster engine one MSET writes keys of one top-level namespace (the first segment of the key path), atomically; these keys span several. Send one MSET per top-level namespace.',
  CONFIG_ERROR:
    'The config file could not be reloaded (the message says why); the running configuration stays in force.',
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** A protocol-level failure carried to the client as `{"ok":false,"error":{code,message}}`. */
export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string = ERRORS[code],
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}
