/**
 * The wire contract, defined once. Each action declares its request (exactly the fields it takes),
 * its result, a summary and the action-specific error codes it can answer with. From this file come:
 * the TypeScript request/result types (Static<>, never written twice), the compiled validators
 * (validate.ts), the command table's schemas (src/commands/) and the per-action reference in
 * docs/protocol.md (scripts/gen-protocol-doc.ts). The client library imports the types from here.
 */
import { type Static, type TProperties, type TSchema, Type } from '@sinclair/typebox';
import type { ErrorCode } from './errors.js';

/** The wire protocol's version, reported by HELLO; raised only for incompatible changes. */
export const PROTOCOL_VERSION = 1;

/** Documented protocol limits (the line and depth limits are server config: see config.ts). */
export const LIMITS = {
  /** Longest string `id`, in UTF-16 code units; longer ids are refused (and not echoed). */
  maxIdLength: 256,
  /** Most keys in one MGET / entries in one MSET. */
  maxBatch: 10_000,
  /** KEYS / NAMESPACES page size when `limit` is not sent. */
  defaultPageLimit: 100,
  /** Largest `limit` a page may ask for. */
  maxPageLimit: 10_000,
  /** Largest `ttl` in milliseconds (2^45 ms, about 1115 years): keeps expiry times exact integers. */
  maxTtlMs: 2 ** 45,
  /** INCR operands and results stay exact integers. */
  maxSafeInteger: Number.MAX_SAFE_INTEGER,
  /** Default nesting limit of a request line (the request object counts as one level). */
  defaultMaxDepth: 64,
  /** Default longest request line, in bytes, without its terminator. */
  defaultMaxLineBytes: 1024 * 1024,
} as const;

// ---------------------------------------------------------------------------------------------
// Shared field types

/**
 * `type: [string, number]` rather than a TypeBox union: a union compiles to `anyOf`, whose errors
 * cannot name the field in one message. `maxLength` applies to strings only.
 */
const Id = Type.Unsafe<string | number>({
  type: ['string', 'number'],
  maxLength: LIMITS.maxIdLength,
  description: `Echoed in the response. A string (at most ${LIMITS.maxIdLength} characters) or a finite number.`,
});
const Namespace = Type.String({
  description: 'Namespace path the key paths are relative to (`users` + `42` is `users^42`).',
});
const Key = Type.String({ description: 'Key path: segments joined by `^` (`users^42^name`).' });
const Json = Type.Unknown({ description: 'Any JSON value (`null` included).' });
const Ttl = Type.Integer({
  minimum: 1,
  maximum: LIMITS.maxTtlMs,
  description: 'Time to live in milliseconds.',
});
const Cursor = Type.String({
  description: 'Return names sorted after this one (the `next` of the previous page).',
});
const Limit = Type.Integer({
  minimum: 1,
  maximum: LIMITS.maxPageLimit,
  description: `Page size (default ${LIMITS.defaultPageLimit}).`,
});
const Next = Type.Union([Type.String(), Type.Null()], {
  description: 'Cursor for the next page (pass as `after`); null on the last page.',
});

function request<A extends string, P extends TProperties>(action: A, props: P) {
  return Type.Object(
    { action: Type.Literal(action, { description: 'Case-insensitive.' }), id: Type.Optional(Id), ...props },
    { additionalProperties: false, title: action },
  );
}

export interface ActionSpec<R extends TSchema = TSchema, S extends TSchema = TSchema> {
  readonly name: string;
  readonly summary: string;
  readonly request: R;
  readonly result: S;
  /** Action-specific error codes; every action can also answer with the generic ones. */
  readonly errors: readonly ErrorCode[];
  /** Notes for the protocol document (semantics beyond the fields). */
  readonly notes?: string;
}

function action<R extends TSchema, S extends TSchema>(spec: ActionSpec<R, S>): ActionSpec<R, S> {
  return spec;
}

// ---------------------------------------------------------------------------------------------
// The actions

const PING = action({
  name: 'PING',
  summary: 'Liveness check.',
  request: request('PING', {}),
  result: Type.Literal('PONG'),
  errors: [],
});

const ECHO = action({
  name: 'ECHO',
  summary: 'Returns `value` unchanged.',
  request: request('ECHO', { value: Json }),
  result: Json,
  errors: [],
});

const SET = action({
  name: 'SET',
  summary: 'Stores `value` at a key, optionally with a TTL or only if the key is absent/present.',
  request: request('SET', {
    namespace: Type.Optional(Namespace),
    key: Key,
    value: Json,
    ttl: Type.Optional(Ttl),
    ifAbsent: Type.Optional(Type.Boolean({ description: 'Write only when the key does not exist.' })),
    ifPresent: Type.Optional(Type.Boolean({ description: 'Write only when the key exists.' })),
  }),
  result: Type.Boolean({
    description: 'Whether the value was written (false when a condition prevented it).',
  }),
  errors: ['BAD_KEY', 'DISK_ERROR'],
  notes:
    'Without `ttl`, a SET removes any earlier TTL of the key. `ifAbsent` and `ifPresent` cannot both be true (BAD_REQUEST).',
});

const GET = action({
  name: 'GET',
  summary: 'Returns the value stored at a key.',
  request: request('GET', { namespace: Type.Optional(Namespace), key: Key }),
  result: Json,
  errors: ['BAD_KEY', 'KEY_NOT_FOUND'],
});

const DEL = action({
  name: 'DEL',
  summary: 'Removes a key.',
  request: request('DEL', { namespace: Type.Optional(Namespace), key: Key }),
  result: Type.Literal(true),
  errors: ['BAD_KEY', 'KEY_NOT_FOUND', 'DISK_ERROR'],
});

const EXISTS = action({
  name: 'EXISTS',
  summary: 'Whether a key exists.',
  request: request('EXISTS', { namespace: Type.Optional(Namespace), key: Key }),
  result: Type.Boolean(),
  errors: ['BAD_KEY'],
});

const INCR = action({
  name: 'INCR',
  summary: 'Adds `by` (default 1) to a number value; a missing key starts at 0. Returns the new number.',
  request: request('INCR', {
    namespace: Type.Optional(Namespace),
    key: Key,
    by: Type.Optional(
      Type.Integer({
        minimum: -LIMITS.maxSafeInteger,
        maximum: LIMITS.maxSafeInteger,
        description: 'Integer to add (default 1, may be negative).',
      }),
    ),
  }),
  result: Type.Number({ description: 'The new value.' }),
  errors: ['BAD_KEY', 'WRONG_TYPE', 'OVERFLOW', 'DISK_ERROR'],
  notes: 'Keeps the key’s TTL. A result beyond ±(2^53 − 1) is refused with OVERFLOW and nothing is written.',
});

const CAS = action({
  name: 'CAS',
  summary: 'Compare-and-set: writes `value` only when the current value deep-equals `expected`.',
  request: request('CAS', { namespace: Type.Optional(Namespace), key: Key, expected: Json, value: Json }),
  result: Type.Boolean({ description: 'Whether the value was written.' }),
  errors: ['BAD_KEY', 'DISK_ERROR'],
  notes:
    'A missing key never matches. Object key order does not matter for the comparison. A successful CAS removes any TTL.',
});

const MGET = action({
  name: 'MGET',
  summary: 'Returns the values of several keys at once.',
  request: request('MGET', {
    namespace: Type.Optional(Namespace),
    keys: Type.Array(Key, { minItems: 1, maxItems: LIMITS.maxBatch }),
  }),
  result: Type.Record(Type.String(), Json, {
    description: 'An object mapping each key, as sent, to its value; keys that do not exist are absent.',
  }),
  errors: ['BAD_KEY'],
  notes: 'Missing keys are left out of the result object rather than set to null, because null is a value.',
});

const MSET = action({
  name: 'MSET',
  summary: 'Stores several keys at once, atomically: all or none.',
  request: request('MSET', {
    namespace: Type.Optional(Namespace),
    entries: Type.Record(Type.String(), Json, {
      minProperties: 1,
      maxProperties: LIMITS.maxBatch,
      description: 'An object mapping key paths to values.',
    }),
  }),
  result: Type.Literal(true),
  errors: ['BAD_KEY', 'DISK_ERROR', 'CROSS_NAMESPACE'],
  notes:
    'If any key is malformed nothing is written. Like SET without `ttl`, it removes earlier TTLs. On the Redis Cluster engine the keys must share their first segment (CROSS_NAMESPACE otherwise).',
});

const KEYS = action({
  name: 'KEYS',
  summary: 'Lists the keys directly in a namespace, sorted, one page at a time.',
  request: request('KEYS', {
    namespace: Type.Optional(Namespace),
    after: Type.Optional(Cursor),
    limit: Type.Optional(Limit),
  }),
  result: Type.Object(
    { keys: Type.Array(Type.String(), { description: 'Key names (last segment only).' }), next: Next },
    { additionalProperties: false },
  ),
  errors: ['BAD_KEY'],
  notes:
    'Names sort by UTF-16 code units. Keys in child namespaces are not listed (see NAMESPACES). Paging is by cursor, so keys added or removed between pages never make a page skip or repeat a name that stays.',
});

const NAMESPACES = action({
  name: 'NAMESPACES',
  summary: 'Lists the child namespaces of a namespace, sorted, one page at a time.',
  request: request('NAMESPACES', {
    namespace: Type.Optional(Namespace),
    after: Type.Optional(Cursor),
    limit: Type.Optional(Limit),
  }),
  result: Type.Object(
    {
      namespaces: Type.Array(Type.String(), { description: 'Child namespace names (one segment each).' }),
      next: Next,
    },
    { additionalProperties: false },
  ),
  errors: ['BAD_KEY'],
});

const COUNT = action({
  name: 'COUNT',
  summary: 'Counts the keys in a namespace and all namespaces below it.',
  request: request('COUNT', { namespace: Type.Optional(Namespace) }),
  result: Type.Integer({ minimum: 0 }),
  errors: ['BAD_KEY'],
});

const DROP = action({
  name: 'DROP',
  summary: 'Removes a namespace and everything below it. Returns how many keys went.',
  request: request('DROP', { namespace: Namespace }),
  result: Type.Integer({ minimum: 0 }),
  errors: ['BAD_KEY', 'DISK_ERROR'],
  notes: 'The root namespace cannot be dropped. Dropping a namespace that does not exist returns 0.',
});

const EXPIRE = action({
  name: 'EXPIRE',
  summary: 'Sets a key’s time to live, replacing any earlier one.',
  request: request('EXPIRE', { namespace: Type.Optional(Namespace), key: Key, ttl: Ttl }),
  result: Type.Literal(true),
  errors: ['BAD_KEY', 'KEY_NOT_FOUND', 'DISK_ERROR'],
});

const TTL = action({
  name: 'TTL',
  summary: 'Milliseconds left before a key expires, or null when it has no TTL.',
  request: request('TTL', { namespace: Type.Optional(Namespace), key: Key }),
  result: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
    description: 'Milliseconds left (at least 1), or null when the key has no TTL.',
  }),
  errors: ['BAD_KEY', 'KEY_NOT_FOUND'],
});

const PERSIST = action({
  name: 'PERSIST',
  summary: 'Removes a key’s TTL.',
  request: request('PERSIST', { namespace: Type.Optional(Namespace), key: Key }),
  result: Type.Boolean({
    description: 'Whether a TTL was removed (false when the key had none or is missing).',
  }),
  errors: ['BAD_KEY', 'DISK_ERROR'],
});

// Pub/sub: channel patterns, key patterns (OBSERVE) and publishing. Pushes are in pushes.ts.

const ChannelPatterns = Type.Array(
  Type.String({
    description:
      'Channel pattern: a `^` path where a `*` segment matches one segment and a final `>` one or more (`news^*`, `orders^eu^>`).',
  }),
  { minItems: 1, maxItems: LIMITS.maxBatch },
);
const KeyPatterns = Type.Array(
  Type.String({ description: 'Key pattern: a key path with the same `*` and `>` wildcards (`users^>`).' }),
  { minItems: 1, maxItems: LIMITS.maxBatch },
);
const Count = (description: string) => Type.Integer({ minimum: 0, description });

const SUBSCRIBE = action({
  name: 'SUBSCRIBE',
  summary: 'Subscribes this connection to channel patterns; messages arrive as `message` pushes.',
  request: request('SUBSCRIBE', { channels: ChannelPatterns }),
  result: Count('How many channel patterns this connection now subscribes to.'),
  errors: ['BAD_CHANNEL', 'TOO_MANY_SUBSCRIPTIONS'],
  notes:
    'All patterns are checked before any is added. Subscribing twice to a pattern keeps one subscription. Each matching publish pushes `{"event":"message","channel":...,"pattern":...,"message":...,"from":...,"seq":N}`: one push per matching pattern, `from` stamped by the server (the publisher\'s connection id; `"$server"` for the server), `seq` counting every push to this connection so a gap shows. Channels whose first segment starts with `$` (`$sys^shutdown`) are reached only by patterns that spell that segment out (`$sys^>`), never by a leading `*` or `>`. Delivery is at most once; messages from one publisher on one channel arrive in publish order. A connection with subscriptions is exempt from the idle timeout. If it reads too slowly, pushes are dropped and `{"event":"gap","dropped":N}` follows as soon as its output has drained, or precedes the next push if that comes first (or, with `--slow-subscriber disconnect`, the connection is closed).',
});

const UNSUBSCRIBE = action({
  name: 'UNSUBSCRIBE',
  summary: 'Removes channel patterns from this connection (all of them when `channels` is omitted).',
  request: request('UNSUBSCRIBE', { channels: Type.Optional(ChannelPatterns) }),
  result: Count('How many channel patterns this connection still subscribes to.'),
  errors: ['BAD_CHANNEL'],
  notes:
    'Patterns give the exact text subscribed (a leading `^` aside); patterns not subscribed are ignored.',
});

const PUBLISH = action({
  name: 'PUBLISH',
  summary: 'Publishes `message` on a channel. Returns how many subscriptions it was delivered to.',
  request: request('PUBLISH', {
    channel: Type.String({ description: 'Channel: a `^` path with no wildcard segment.' }),
    message: Type.Unknown({ description: 'Any JSON value (`null` included).' }),
  }),
  result: Count(
    'Pushes delivered (a subscriber matching with two patterns counts twice; dropped pushes do not count).',
  ),
  errors: ['BAD_CHANNEL', 'NOPERM', 'RATE_LIMITED', 'MESSAGE_TOO_LARGE'],
  notes:
    'Channels whose first segment starts with `$` belong to the server: publishing there is refused with NOPERM. Publishes per connection are rate limited (`--max-publish-rate`); over it the publish is refused with RATE_LIMITED and the connection stays open. `--max-message-bytes` bounds the message (as JSON).',
});

const OBSERVE = action({
  name: 'OBSERVE',
  summary: 'Observes changes to keys matching patterns; each change arrives as a `change` push.',
  request: request('OBSERVE', { keys: KeyPatterns }),
  result: Count('How many key patterns this connection now observes.'),
  errors: ['BAD_KEY', 'TOO_MANY_SUBSCRIPTIONS'],
  notes:
    'Each change to a matching key pushes `{"event":"change","key":...,"op":...,"value":...,"seq":N}` once per observer, with `op` one of `set`, `del`, `expire` (the key expired), `drop`, `incr`, `cas`, and `value` (the new value) for `set`, `incr` and `cas` only. A DROP sends one `drop` change whose `key` is the dropped namespace to every observer whose patterns could match a key below it. Subscriptions and observations share `seq` and the per-connection limit.',
});

const UNOBSERVE = action({
  name: 'UNOBSERVE',
  summary: 'Removes key patterns from this connection (all of them when `keys` is omitted).',
  request: request('UNOBSERVE', { keys: Type.Optional(KeyPatterns) }),
  result: Count('How many key patterns this connection still observes.'),
  errors: ['BAD_KEY'],
});

const CountByName = Type.Record(Type.String(), Type.Integer({ minimum: 0 }));

const RewriteResult = Type.Object(
  {
    at: Type.Number({ description: 'When it finished (ms since the epoch).' }),
    durationMs: Type.Integer({ minimum: 0 }),
    keys: Type.Integer({ minimum: 0, description: 'Keys written to the new base file.' }),
    baseBytes: Type.Integer({ minimum: 0, description: 'Size of the new base file.' }),
  },
  { additionalProperties: false },
);

const INFO = action({
  name: 'INFO',
  summary:
    'Server statistics: version, uptime, connections, commands, errors, keys, memory, persistence, pub/sub.',
  request: request('INFO', {}),
  result: Type.Object(
    {
      version: Type.String(),
      uptimeMs: Type.Integer({ minimum: 0 }),
      connections: Type.Object({
        current: Type.Integer({ minimum: 0 }),
        total: Type.Integer({ minimum: 0 }),
        rejected: Type.Integer({ minimum: 0 }),
      }),
      commands: Type.Object(
        { total: Type.Integer({ minimum: 0 }), byAction: CountByName },
        { description: 'Requests dispatched to an action (whatever their outcome).' },
      ),
      errors: Type.Object(
        { total: Type.Integer({ minimum: 0 }), byCode: CountByName },
        { description: 'Error responses sent, by code.' },
      ),
      keys: Type.Integer({ minimum: 0 }),
      keysWithTtl: Type.Integer({ minimum: 0 }),
      expired: Type.Integer({ minimum: 0, description: 'Keys removed by expiry since start.' }),
      namespaces: Type.Integer({ minimum: 0 }),
      memory: Type.Object({
        rss: Type.Integer({ minimum: 0 }),
        heapUsed: Type.Integer({ minimum: 0 }),
        heapTotal: Type.Integer({ minimum: 0 }),
      }),
      persistence: Type.Union(
        [
          Type.Null(),
          Type.Object(
            {
              dir: Type.String({ description: 'The data directory (`--data-dir`).' }),
              appendfsync: Type.Unsafe<'always' | 'everysec' | 'no'>({
                type: 'string',
                enum: ['always', 'everysec', 'no'],
              }),
              lastFsyncAt: Type.Union([Type.Number(), Type.Null()], {
                description: 'When the log was last synced (ms since the epoch); null before the first sync.',
              }),
              rewriting: Type.Boolean(),
              rewrites: Type.Integer({ minimum: 0, description: 'Rewrites completed since start.' }),
              lastRewrite: Type.Union([RewriteResult, Type.Null()]),
              baseBytes: Type.Integer({ minimum: 0, description: 'Size of the base (snapshot) file.' }),
              incrBytes: Type.Integer({ minimum: 0, description: 'Size of the incremental files.' }),
              pendingBytes: Type.Integer({
                minimum: 0,
                description:
                  'Appended but not yet known durable (buffered, being written, or not yet synced).',
              }),
              diskError: Type.Union([Type.String(), Type.Null()], {
                description: 'The disk error that refuses writes now (DISK_ERROR), or null.',
              }),
            },
            { additionalProperties: false },
          ),
        ],
        { description: 'The append-only log (docs/persistence.md); null without `--data-dir`.' },
      ),
      pubsub: Type.Object(
        {
          subscribers: Type.Integer({
            minimum: 0,
            description: 'Connections (and in-process handlers) holding a subscription or observation.',
          }),
          subscriptions: Type.Integer({ minimum: 0 }),
          observations: Type.Integer({ minimum: 0 }),
          publishes: Type.Integer({ minimum: 0 }),
          relayed: Type.Integer({
            minimum: 0,
            description: "Other nodes' publishes delivered here (cluster mode; 0 on one server).",
          }),
          messagesDelivered: Type.Integer({ minimum: 0 }),
          changesDelivered: Type.Integer({ minimum: 0 }),
          dropped: Type.Integer({
            minimum: 0,
            description: 'Pushes dropped for slow subscribers (policy drop).',
          }),
          slowDisconnected: Type.Integer({
            minimum: 0,
            description: 'Slow subscribers disconnected (policy disconnect).',
          }),
          refused: Type.Object(
            { total: Type.Integer({ minimum: 0 }), byCode: CountByName },
            { description: 'Refused pub/sub requests, by code.' },
          ),
        },
        { description: 'Pub/sub: current subscriptions and counters since start.' },
      ),
    },
    { additionalProperties: false },
  ),
  errors: [],
});

const HELP = action({
  name: 'HELP',
  summary: 'Lists every action with its summary.',
  request: request('HELP', {}),
  result: Type.Array(Type.Object({ action: Type.String(), summary: Type.String() })),
  errors: [],
});

const AUTH = action({
  name: 'AUTH',
  summary: 'Authenticates the connection as a user from the server configuration.',
  request: request('AUTH', {
    user: Type.String({ minLength: 1, maxLength: 64, description: 'User name.' }),
    password: Type.String({
      maxLength: 1024,
      description: 'The password (sent in the clear: use TLS beyond loopback).',
    }),
  }),
  result: Type.Object(
    { user: Type.String({ description: 'The user now bound to the connection.' }) },
    { additionalProperties: false },
  ),
  errors: ['AUTH_FAILED', 'RATE_LIMITED'],
  notes:
    'Allowed before authentication. A failure is answered after a delay that grows with each failure on the connection; after `--auth-max-failures` the connection is closed, and after `--auth-max-failures-per-address` failures from one address within `--auth-block-seconds` that address is refused (RATE_LIMITED) for that long; attempts still being verified count toward that limit, and an AUTH beyond it answers RATE_LIMITED without checking the password. A failed AUTH on an authenticated connection keeps the earlier user. Requests pipelined after an AUTH wait for its outcome. On a server without users, AUTH fails with AUTH_FAILED saying so. See docs/security.md.',
});

const HELLO = action({
  name: 'HELLO',
  summary:
    'Describes the server and the connection: name, version, protocol version, whether AUTH is required, the current user.',
  request: request('HELLO', {}),
  result: Type.Object(
    {
      server: Type.Literal('caretkv'),
      version: Type.String(),
      protocol: Type.Integer({ minimum: 1, description: 'Wire protocol version.' }),
      authRequired: Type.Boolean({ description: 'Whether the server has users (AUTH needed).' }),
      user: Type.Union([Type.String(), Type.Null()], {
        description: 'The authenticated user, or null.',
      }),
    },
    { additionalProperties: false },
  ),
  errors: [],
  notes: 'Allowed before authentication.',
});

const CONFIG = action({
  name: 'CONFIG',
  summary:
    'Server configuration: `op: "RELOAD"` re-reads the config file (users, permissions, TLS certificates).',
  request: request('CONFIG', {
    op: Type.Unsafe<'RELOAD'>({ type: 'string', enum: ['RELOAD'], description: 'The operation: `RELOAD`.' }),
  }),
  result: Type.Object(
    {
      users: Type.Integer({ minimum: 0, description: 'Users now configured.' }),
      tls: Type.Boolean({ description: 'Whether TLS certificates were re-read.' }),
      restartNeeded: Type.Array(Type.String(), {
        description: 'Changed settings that only take effect after a restart.',
      }),
    },
    { additionalProperties: false },
  ),
  errors: ['CONFIG_ERROR'],
  notes:
    'Same as SIGHUP. New users and permissions apply to live connections at once: a connection whose user was removed (or whose password changed) loses its authentication with a `deauthenticated` push; subscriptions no longer allowed end with a push. If the file is invalid nothing changes and the answer is CONFIG_ERROR.',
});

const REWRITE = action({
  name: 'REWRITE',
  summary: 'Compacts the append-only log now: a new base file from memory, and a fresh incremental file.',
  request: request('REWRITE', {}),
  result: RewriteResult,
  errors: ['PERSISTENCE_OFF', 'DISK_ERROR'],
  notes:
    'Answers when the rewrite is done (a rewrite already running is joined). Writes go on meanwhile. Rewrites also start by themselves when the incremental files outgrow the base by `--rewrite-percentage` and are at least `--rewrite-min-size` bytes. See docs/persistence.md.',
});

const BACKUP = action({
  name: 'BACKUP',
  summary: 'Writes a consistent copy of the append-only log to a new directory under `<data-dir>/backups/`.',
  request: request('BACKUP', {}),
  result: Type.Object(
    {
      dir: Type.String({ description: 'The backup: a data directory a server can start from.' }),
      files: Type.Integer({ minimum: 1 }),
      bytes: Type.Integer({ minimum: 0 }),
    },
    { additionalProperties: false },
  ),
  errors: ['PERSISTENCE_OFF', 'DISK_ERROR'],
  notes:
    'The copy holds every write answered before BACKUP was received and none made after it answers; writes go on meanwhile. Restore: stop the server and start it with `--data-dir` set to the backup (or to a copy of it). `caretkv backup` does this from the command line.',
});

/** Every action, in the order the protocol document presents them. */
export const ACTIONS = {
  PING,
  ECHO,
  SET,
  GET,
  DEL,
  EXISTS,
  INCR,
  CAS,
  MGET,
  MSET,
  KEYS,
  NAMESPACES,
  COUNT,
  DROP,
  EXPIRE,
  TTL,
  PERSIST,
  SUBSCRIBE,
  UNSUBSCRIBE,
  PUBLISH,
  OBSERVE,
  UNOBSERVE,
  INFO,
  HELP,
  AUTH,
  HELLO,
  CONFIG,
  REWRITE,
  BACKUP,
} as const;

export type Actions = typeof ACTIONS;
export type ActionName = keyof Actions;

/** The request type of one action, e.g. `RequestOf<'SET'>`. */
export type RequestOf<A extends ActionName> = Static<Actions[A]['request']>;
/** The result type of one action, e.g. `ResultOf<'KEYS'>`. */
export type ResultOf<A extends ActionName> = Static<Actions[A]['result']>;
/** Any valid request. */
export type Request = { [A in ActionName]: RequestOf<A> }[ActionName];

export type PingRequest = RequestOf<'PING'>;
export type EchoRequest = RequestOf<'ECHO'>;
export type SetRequest = RequestOf<'SET'>;
export type GetRequest = RequestOf<'GET'>;
export type DelRequest = RequestOf<'DEL'>;
export type ExistsRequest = RequestOf<'EXISTS'>;
export type IncrRequest = RequestOf<'INCR'>;
export type CasRequest = RequestOf<'CAS'>;
export type MgetRequest = RequestOf<'MGET'>;
export type MsetRequest = RequestOf<'MSET'>;
export type KeysRequest = RequestOf<'KEYS'>;
export type NamespacesRequest = RequestOf<'NAMESPACES'>;
export type CountRequest = RequestOf<'COUNT'>;
export type DropRequest = RequestOf<'DROP'>;
export type ExpireRequest = RequestOf<'EXPIRE'>;
export type TtlRequest = RequestOf<'TTL'>;
export type PersistRequest = RequestOf<'PERSIST'>;
export type InfoRequest = RequestOf<'INFO'>;
export type HelpRequest = RequestOf<'HELP'>;
export type AuthRequest = RequestOf<'AUTH'>;
export type HelloRequest = RequestOf<'HELLO'>;
export type ConfigRequest = RequestOf<'CONFIG'>;

/** The response envelope (one line each). */
export const OkResponse = Type.Object({ id: Type.Optional(Id), ok: Type.Literal(true), result: Json });
export const ErrorResponse = Type.Object({
  id: Type.Optional(Id),
  ok: Type.Literal(false),
  error: Type.Object({ code: Type.String(), message: Type.String() }),
});
export type OkResponse<R = unknown> = Omit<Static<typeof OkResponse>, 'result'> & { result: R };
export type ErrorResponse = Static<typeof ErrorResponse> & { error: { code: ErrorCode } };
export type Response<R = unknown> = OkResponse<R> | ErrorResponse;
