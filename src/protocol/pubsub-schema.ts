/**
 * The pub/sub actions of the wire contract: SUBSCRIBE UNSUBSCRIBE PUBLISH OBSERVE UNOBSERVE, in
 * schema.ts's style. A factory rather than constants so that schema.ts can spread them into
 * ACTIONS with its own shared `id` field and batch limit, without an import cycle (this module
 * imports nothing from schema.ts):
 *
 *   const PUBSUB = pubsubActions({ id: Id, maxPatterns: LIMITS.maxBatch });
 *   export const ACTIONS = { ..., ...PUBSUB, INFO, HELP } as const;
 *
 * Pushes (lines with `event` and no `ok`) are documented in the notes; their shapes are fixed by
 * src/pubsub/subscriber.ts.
 */
import { type TProperties, type TSchema, Type } from '@sinclair/typebox';

export interface PubsubSchemaOptions<I extends TSchema> {
  /** schema.ts's `Id` field. */
  readonly id: I;
  /** Most patterns in one request (schema.ts's `LIMITS.maxBatch`). */
  readonly maxPatterns: number;
}

/** schema.ts's ActionSpec, with the codes as plain names (they join ErrorCode with errors.ts). */
export interface PubsubActionSpec<R extends TSchema, S extends TSchema> {
  readonly name: string;
  readonly summary: string;
  readonly request: R;
  readonly result: S;
  readonly errors: readonly PubsubErrorCode[];
  readonly notes?: string;
}

/** The catalogue codes (src/protocol/errors.ts) pub/sub actions answer with. */
export type PubsubErrorCode =
  | 'BAD_CHANNEL'
  | 'BAD_KEY'
  | 'NOPERM'
  | 'RATE_LIMITED'
  | 'MESSAGE_TOO_LARGE'
  | 'TOO_MANY_SUBSCRIPTIONS';

function action<R extends TSchema, S extends TSchema>(spec: PubsubActionSpec<R, S>): PubsubActionSpec<R, S> {
  return spec;
}

export function pubsubActions<I extends TSchema>({ id, maxPatterns }: PubsubSchemaOptions<I>) {
  function request<A extends string, P extends TProperties>(action: A, props: P) {
    return Type.Object(
      { action: Type.Literal(action, { description: 'Case-insensitive.' }), id: Type.Optional(id), ...props },
      { additionalProperties: false, title: action },
    );
  }

  const ChannelPatterns = Type.Array(
    Type.String({
      description:
        'Channel pattern: a `^` path where a `*` segment matches one segment and a final `>` one or more (`news^*`, `orders^eu^>`).',
    }),
    { minItems: 1, maxItems: maxPatterns },
  );
  const KeyPatterns = Type.Array(
    Type.String({ description: 'Key pattern: a key path with the same `*` and `>` wildcards (`users^>`).' }),
    { minItems: 1, maxItems: maxPatterns },
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

  return { SUBSCRIBE, UNSUBSCRIBE, PUBLISH, OBSERVE, UNOBSERVE };
}
