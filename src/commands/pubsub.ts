/**
 * Pub/sub commands: SUBSCRIBE UNSUBSCRIBE PUBLISH OBSERVE UNOBSERVE.
 * Each is one broker call on the connection's pub/sub side (`broker.remote(conn)`); the broker
 * validates patterns and channels, applies the limits and counts refusals, which come back as
 * values and leave here as `Fail`s. `from` is never read from the request: the broker stamps the
 * connection's identity.
 */
import type { Static, TUnsafe } from '@sinclair/typebox';
import type { ErrorCode } from '../protocol/errors.js';
import type { pubsubActions } from '../protocol/pubsub-schema.js';
import { ACTIONS, type ActionSpec } from '../protocol/schema.js';
import { type Broker, PubSubRefusal } from '../pubsub/index.js';
import type { AnyCommandDef, CommandContext, CommandFlag, Handler } from './table.js';
import { Fail } from './table.js';

/** schema.ts's `Id` field is a `TUnsafe<string | number>`. */
type PubsubActions = ReturnType<typeof pubsubActions<TUnsafe<string | number>>>;
type PubsubName = keyof PubsubActions;
type PubsubRequest<A extends PubsubName> = Static<PubsubActions[A]['request']>;

/** What these commands need beyond the base context: the broker (one per server). */
export interface PubsubContext extends CommandContext {
  readonly broker?: Broker;
}

const NO_BROKER = new Fail('INTERNAL', 'pub/sub is not enabled on this server');
const NO_CONNECTION = new Fail('BAD_REQUEST', 'pub/sub actions need a client connection');

/** A refusal's code is a catalogue code (src/protocol/errors.ts lists every pub/sub one). */
function fail(refusal: PubSubRefusal): Fail {
  return new Fail(refusal.code as ErrorCode, refusal.message);
}

function result(value: number | PubSubRefusal): number | Fail {
  return value instanceof PubSubRefusal ? fail(value) : value;
}

/**
 * Shared by every pub/sub command: finds the broker and the connection's subscriber, or says
 * why there is none.
 */
function remoteOf(ctx: CommandContext) {
  const broker = (ctx as PubsubContext).broker;
  if (broker === undefined) return NO_BROKER;
  if (ctx.conn === undefined) return NO_CONNECTION;
  return { broker, remote: broker.remote(ctx.conn) };
}

export const pubsubHandlers: { [A in PubsubName]: Handler<PubsubRequest<A>> } = {
  SUBSCRIBE(req, ctx) {
    const at = remoteOf(ctx);
    return at instanceof Fail ? at : result(at.broker.subscribe(at.remote, req.channels));
  },

  UNSUBSCRIBE(req, ctx) {
    const at = remoteOf(ctx);
    return at instanceof Fail ? at : result(at.broker.unsubscribe(at.remote, req.channels));
  },

  PUBLISH(req, ctx) {
    const at = remoteOf(ctx);
    if (at instanceof Fail) return at;
    // The request was parsed from JSON, so the message re-serializes exactly (and only once).
    return result(at.broker.publish(req.channel, JSON.stringify(req.message), at.remote));
  },

  OBSERVE(req, ctx) {
    const at = remoteOf(ctx);
    return at instanceof Fail ? at : result(at.broker.observe(at.remote, req.keys));
  },

  UNOBSERVE(req, ctx) {
    const at = remoteOf(ctx);
    return at instanceof Fail ? at : result(at.broker.unobserve(at.remote, req.keys));
  },
};

const FLAGS: readonly CommandFlag[] = ['pubsub'];

/**
 * The family for `buildTable`. A function, not a constant like the other families, only while
 * ACTIONS (schema.ts) does not list these actions yet: it looks their specs up when called and
 * says what is missing. Once ACTIONS spreads `pubsubActions(...)`, each entry can become
 * `defineCommand('SUBSCRIBE', { flags: ['pubsub'], handler: pubsubHandlers.SUBSCRIBE })`.
 */
export function pubsubCommands(): AnyCommandDef[] {
  const actions = ACTIONS as Readonly<Record<string, ActionSpec>>;
  return (Object.keys(pubsubHandlers) as PubsubName[]).map((name) => {
    const spec = actions[name];
    if (spec === undefined) {
      throw new Error(
        `action ${name} is not in ACTIONS: spread pubsubActions() (protocol/pubsub-schema.ts) into it`,
      );
    }
    // The table erases request types anyway (Command.handler is Handler<never>).
    return {
      name,
      summary: spec.summary,
      flags: FLAGS,
      schema: spec,
      rawJson: false,
      handler: pubsubHandlers[name],
    } as unknown as AnyCommandDef;
  });
}
