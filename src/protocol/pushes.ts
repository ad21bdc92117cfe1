/**
 * Pushes: the lines the server sends on its own (an `event` field, never `ok` or `id`). Each is
 * defined once here, like requests in schema.ts: the schema documents it (docs/protocol.md's pushes
 * table is generated from PUSHES) and types the client's push events, and NDJSON_PUSHES is the one
 * encoder that writes them. The broker (pubsub/) and auth/ hold an encoder handed to them by the
 * composition root and never build JSON themselves.
 *
 * Fast path: a publish serializes its channel, message and `from` once (`messageHead`,
 * `messageTail`), each subscription its pattern once (`pattern`); a push then costs only its `seq`.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';

const Seq = Type.Integer({
  minimum: 1,
  description: 'Counts every push to this connection (dropped ones too), so a hole shows.',
});
const Message = Type.String({ description: 'What happened, for a human.' });
/** What a `change` push says happened to the key. */
export const CHANGE_OPS = ['set', 'del', 'expire', 'drop', 'incr', 'cas'] as const;

function push<E extends string, P extends Record<string, TSchema>>(event: E, description: string, props: P) {
  return Type.Object({ event: Type.Literal(event), ...props }, { additionalProperties: false, description });
}

export const PUSHES = {
  message: push(
    'message',
    "a PUBLISH on a channel one of this connection's SUBSCRIBE patterns matches: one push per matching pattern",
    {
      channel: Type.String({ description: 'The channel published to (canonical).' }),
      pattern: Type.String({ description: 'The subscription pattern that matched, as subscribed.' }),
      message: Type.Unknown({ description: 'The published value, exactly.' }),
      from: Type.Union([Type.String(), Type.Integer()], {
        description: 'Stamped by the server: the user, or the connection id; "$server" for the server.',
      }),
      seq: Seq,
    },
  ),
  change: push(
    'change',
    "a change of a key one of this connection's OBSERVE patterns matches: one push per change",
    {
      key: Type.String({ description: 'The key (for drop: the namespace removed).' }),
      op: Type.Union(
        CHANGE_OPS.map((op) => Type.Literal(op)),
        { description: 'What happened to it.' },
      ),
      value: Type.Optional(Type.Unknown({ description: 'The new value, for set, incr and cas.' })),
      seq: Seq,
    },
  ),
  gap: push(
    'gap',
    "pushes were dropped for this connection (`dropped`): as soon as its output has drained, or before its next push; or, in cluster mode, other nodes' messages and changes may be missing (`reason`)",
    {
      dropped: Type.Optional(
        Type.Integer({
          minimum: 1,
          description: 'How many pushes were dropped because the connection read too slowly.',
        }),
      ),
      reason: Type.Optional(
        Type.Literal('backend', {
          description:
            "Instead of dropped: this node lost its connection to the shared backend (cluster mode), so other nodes' messages and changes from now until it is back may be missing; seq skips nothing for them.",
        }),
      ),
    },
  ),
  revoked: push(
    'revoked',
    'a permissions change ended subscriptions or observations the user may no longer hold',
    {
      channels: Type.Array(Type.String()),
      keys: Type.Array(Type.String()),
      reason: Type.String(),
    },
  ),
  deauthenticated: push(
    'deauthenticated',
    "a reload removed the connection's user or changed its password, or the server now requires AUTH",
    { message: Message },
  ),
  shutdown: push('shutdown', 'last line before a graceful shutdown closes the connection', {
    message: Message,
  }),
} as const;

export type PushName = keyof typeof PUSHES;
export type PushOf<P extends PushName> = Static<(typeof PUSHES)[P]>;
const line = (value: object): string => `${JSON.stringify(value)}\n`;

/**
 * The JSON-lines push encoder. Its shape is pubsub/'s PushEncoder (checked where server.ts hands it
 * to the broker) plus the auth and shutdown pushes.
 */
export const NDJSON_PUSHES = {
  /** `{"event":"message","channel":<channel>,"pattern":` */
  messageHead: (channel: string) => `{"event":"message","channel":${JSON.stringify(channel)},"pattern":`,
  /** `,"message":<json>,"from":<from>,"seq":` */
  messageTail: (json: string, fromJson: string) => `,"message":${json},"from":${fromJson},"seq":`,
  /** A subscription's pattern (or a publisher's `from`) as it appears in pushes. */
  quoted: (text: string | number) => JSON.stringify(text),
  /** `{"event":"change","key":<key>,"op":<op>[,"value":<json>],"seq":` */
  changeHead: (key: string, op: string, value: string | undefined) =>
    value === undefined
      ? `{"event":"change","key":${JSON.stringify(key)},"op":${JSON.stringify(op)},"seq":`
      : `{"event":"change","key":${JSON.stringify(key)},"op":${JSON.stringify(op)},"value":${value},"seq":`,
  /** Closes a push after its seq. */
  end: '}\n',
  gap: (dropped: number) => `{"event":"gap","dropped":${dropped}}\n`,
  backendGap: '{"event":"gap","reason":"backend"}\n',
  revoked: (channels: readonly string[], keys: readonly string[], reason: string) =>
    line({ event: 'revoked', channels, keys, reason }),
  deauthenticated: (message: string) => line({ event: 'deauthenticated', message }),
  shutdown: (message: string) => line({ event: 'shutdown', message }),
} as const;
