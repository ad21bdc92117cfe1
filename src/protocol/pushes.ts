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
    'pushes were dropped for this connection: as soon as its output has drained, or before its next push',
    {
      dropped: Type.Integer({ minimum: 1, description: 'How many pushes were dropped.' }),
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
/** Any push, as a client receives it. */
export type Push = { [P in PushName]: PushOf<P> }[PushName];

/** What the broker and auth need to write pushes (pubsub/subscriber.ts declares the same shape). */
export interface NdjsonPushes {
  /** `{"event":"message","channel":<channel>,"pattern":` */
  messageHead(channel: string): string;
  /** `,"message":<json>,"from":<from>,"seq":` */
  messageTail(json: string, fromJson: string): string;
  /** A subscription's pattern (or a publisher's `from`) as it appears in pushes. */
  quoted(text: string | number): string;
  /** `{"event":"change","key":<key>,"op":<op>[,"value":<json>],"seq":` */
  changeHead(key: string, op: string, value: string | undefined): string;
  /** Closes a push after its seq. */
  readonly end: string;
  gap(dropped: number): string;
  revoked(channels: readonly string[], keys: readonly string[], reason: string): string;
  deauthenticated(message: string): string;
  shutdown(message: string): string;
}

const line = (value: object): string => `${JSON.stringify(value)}\n`;

export const NDJSON_PUSHES: NdjsonPushes = {
  messageHead: (channel) => `{"event":"message","channel":${JSON.stringify(channel)},"pattern":`,
  messageTail: (json, fromJson) => `,"message":${json},"from":${fromJson},"seq":`,
  quoted: (text) => JSON.stringify(text),
  changeHead: (key, op, value) =>
    value === undefined
      ? `{"event":"change","key":${JSON.stringify(key)},"op":${JSON.stringify(op)},"seq":`
      : `{"event":"change","key":${JSON.stringify(key)},"op":${JSON.stringify(op)},"value":${value},"seq":`,
  end: '}\n',
  gap: (dropped) => `{"event":"gap","dropped":${dropped}}\n`,
  revoked: (channels, keys, reason) => line({ event: 'revoked', channels, keys, reason }),
  deauthenticated: (message) => line({ event: 'deauthenticated', message }),
  shutdown: (message) => line({ event: 'shutdown', message }),
};
