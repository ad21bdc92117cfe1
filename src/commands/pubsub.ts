/**
 * Pub/sub commands: SUBSCRIBE UNSUBSCRIBE PUBLISH OBSERVE UNOBSERVE.
 * Each is one broker call on the connection's pub/sub side (`broker.remote(conn)`); the broker
 * validates patterns and channels, applies the limits and the user's permissions and counts
 * refusals, which come back as values and leave here as `Fail`s. `from` is never read from the
 * request: the broker stamps the connection's identity (its user, or its id on an open server).
 */
import type { ConnectionAuth, PermissionsChange } from '../auth/connection.js';
import type { ErrorCode } from '../protocol/errors.js';
import type { RequestOf } from '../protocol/schema.js';
import { type PubSubBroker, PubSubRefusal, type RemoteSubscriber } from '../pubsub/index.js';
import { quote } from '../quote.js';
import { Fail } from '../result.js';
import { type CommandContext, defineCommand, type Handler } from './table.js';

type PubsubName = 'SUBSCRIBE' | 'UNSUBSCRIBE' | 'PUBLISH' | 'OBSERVE' | 'UNOBSERVE';

const NO_BROKER = new Fail('INTERNAL', 'pub/sub is not enabled on this server');
const NO_CONNECTION = new Fail('BAD_REQUEST', 'pub/sub actions need a client connection');

/** A refusal's code is a catalogue code (src/protocol/errors.ts lists every pub/sub one). */
function fail(refusal: PubSubRefusal): Fail {
  return new Fail(refusal.code as ErrorCode, refusal.message);
}

function result(value: number | PubSubRefusal): number | Fail {
  return value instanceof PubSubRefusal ? fail(value) : value;
}

/** Connections whose subscriber already carries their identity, guard and revocation hook. */
const attached = new WeakSet<RemoteSubscriber>();

/**
 * Shared by every pub/sub command: the broker and the connection's subscriber, or why there is
 * none. On a connection's first pub/sub command its subscriber is tied to its auth (below).
 */
function remoteOf(ctx: CommandContext): { broker: PubSubBroker; remote: RemoteSubscriber } | Fail {
  const broker = ctx.broker;
  if (broker === undefined) return NO_BROKER;
  if (ctx.conn === undefined) return NO_CONNECTION;
  const remote = broker.remote(ctx.conn);
  if (!attached.has(remote)) {
    attached.add(remote);
    attach(broker, remote, ctx.auth);
  }
  return { broker, remote };
}

/**
 * Ties a connection's subscriber to its authentication (src/auth/connection.ts): messages are
 * stamped with the user, the user's channel and key patterns decide what it may subscribe,
 * observe and publish, and when its permissions change (a reload, AUTH as another user) what it
 * may no longer hold ends with a `revoked` push saying why. Attached on an open server too: its
 * checks then allow everything, but a reload that adds users makes its connections
 * unauthenticated, and what they hold must end then.
 */
function attach(broker: PubSubBroker, remote: RemoteSubscriber, auth: ConnectionAuth): void {
  remote.identify(auth.userName);
  remote.guard = {
    publish: (channel) =>
      auth.canPublish(channel) ? undefined : auth.deny('PUBLISH', `channel ${quote(channel)}`).message,
    subscribe: (pattern) =>
      auth.canSubscribe(pattern)
        ? undefined
        : auth.deny('SUBSCRIBE', `channel pattern ${quote(pattern)}`).message,
    observe: (pattern) =>
      auth.canObserve(pattern) ? undefined : auth.deny('OBSERVE', `key pattern ${quote(pattern)}`).message,
  };
  auth.on('permissions-changed', (change) => {
    remote.identify(change.user);
    broker.recheck(remote, revocationReason(change));
  });
}

function revocationReason(change: PermissionsChange): string {
  switch (change.reason) {
    case 'reload':
      return 'the server reloaded its configuration and the user may no longer hold these';
    case 'authenticated':
      return `the connection authenticated as user ${quote(change.user ?? '')}, who may not hold these`;
    case 'deauthenticated':
      return 'the connection is no longer authenticated';
  }
}

export const pubsubHandlers: { [A in PubsubName]: Handler<RequestOf<A>> } = {
  SUBSCRIBE(req, ctx) {
    const at = remoteOf(ctx);
    if (at instanceof Fail) return at;
    const held = result(at.broker.subscribe(at.remote, req.channels));
    // Across nodes (cluster mode), answered once other nodes' publishes reach the new patterns.
    const pending = at.broker.relaying();
    return pending === undefined ? held : pending.then(() => held);
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

// Patterns and channels are checked by the broker through ctx.auth's hooks, not as key specs.
const PATTERNS = { kind: 'patterns' } as const;

export const pubsubCommands = [
  defineCommand('SUBSCRIBE', { flags: ['pubsub'], keys: PATTERNS, handler: pubsubHandlers.SUBSCRIBE }),
  defineCommand('UNSUBSCRIBE', { flags: ['pubsub'], keys: PATTERNS, handler: pubsubHandlers.UNSUBSCRIBE }),
  defineCommand('PUBLISH', { flags: ['pubsub'], keys: PATTERNS, handler: pubsubHandlers.PUBLISH }),
  defineCommand('OBSERVE', { flags: ['pubsub'], keys: PATTERNS, handler: pubsubHandlers.OBSERVE }),
  defineCommand('UNOBSERVE', { flags: ['pubsub'], keys: PATTERNS, handler: pubsubHandlers.UNOBSERVE }),
];
