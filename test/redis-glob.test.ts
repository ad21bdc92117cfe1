/**
 * caretkv patterns as Redis globs (src/pubsub/redis-glob.ts) against a real redis-server: every
 * channel a pattern matches is delivered by Redis (never a miss), literal segments match exactly
 * even when they hold glob characters, and the extra deliveries a glob lets through are exactly
 * what caretkv's own matcher then refuses.
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelRules, matches, type Pattern, parseChannel, parsePattern } from '../src/pubsub/pattern.js';
import { redisChannel, redisSubscription } from '../src/pubsub/redis-glob.js';
import { decodeUnits } from '../src/store/redis/keys.js';
import { waitFor } from './helpers/net.js';
import { NO_REDIS, type RedisServer, redisAvailable, startRedisServer } from './helpers/redis.js';

const PREFIX = 'ck:c:';
const rules = channelRules();

// Literal segments with every glob special character, multi-byte text and a lone surrogate.
const literal = fc.constantFrom(
  'a',
  'b',
  'a*',
  '*b',
  '?',
  '[ab]',
  ']',
  '\\',
  'x\\*',
  'é',
  '\u{1F600}',
  '\ud800',
  '>x',
);
const patternSegment = fc.oneof(literal, fc.constant('*'));
const patternText = fc
  .tuple(fc.array(patternSegment, { minLength: 1, maxLength: 3 }), fc.boolean())
  .map(([segments, rest]) => [...segments, ...(rest ? ['>'] : [])].join('^'));
/** A pattern as a Redis glob matches channels: each wildcard stands for one or more whole segments. */
function globMatches(pattern: readonly string[], channel: readonly string[]): boolean {
  if (pattern.length === 0) return channel.length === 0;
  const [head, ...rest] = pattern;
  if (head === '*' || head === '>') {
    for (let n = 1; n <= channel.length; n++) if (globMatches(rest, channel.slice(n))) return true;
    return false;
  }
  return channel.length > 0 && channel[0] === head && globMatches(rest, channel.slice(1));
}

const channelText = fc.array(literal, { minLength: 1, maxLength: 4 }).map((s) => s.join('^'));

describe('caretkv patterns as Redis globs, on a real redis-server', () => {
  let server: RedisServer | undefined;
  const clients: Redis[] = [];
  const client = (): Redis => {
    const c = new Redis({ host: server!.host, port: server!.port });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    if (!redisAvailable()) return;
    server = await startRedisServer();
  }, 30_000);

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await server?.stop();
  });

  it('delivers every channel a pattern matches; what else it delivers, the exact matcher refuses', async (ctx) => {
    if (server === undefined) {
      ctx.skip(NO_REDIS);
      return;
    }
    const [patternTexts, channelTexts] = fc.sample(
      fc.tuple(
        fc.uniqueArray(patternText, { minLength: 40, maxLength: 40 }),
        fc.uniqueArray(channelText, { minLength: 60, maxLength: 60 }),
      ),
      { numRuns: 1, seed: 16 },
    )[0]!;
    const patterns = patternTexts.map((t) => parsePattern(t, rules) as Pattern);
    const channels = channelTexts.map((t) => parseChannel(t, rules) as string);
    // One subscriber connection per pattern, so every delivery is known to be that pattern's
    // (a pmessage's pattern comes back from the client as a string: not a safe identity).
    const sentinel = redisChannel(PREFIX, '$end');
    const received = new Map<Pattern, Set<string>>();
    const finished = new Set<Pattern>();
    for (const p of patterns) {
      const got = new Set<string>();
      received.set(p, got);
      const sub = client();
      const { glob, name } = redisSubscription(PREFIX, p);
      sub.on(glob ? 'pmessageBuffer' : 'messageBuffer', (...args: Buffer[]) => {
        got.add(decodeUnits(args[args.length - 2]!).slice(PREFIX.length));
      });
      sub.on('messageBuffer', (channel: Buffer) => {
        if (channel.equals(sentinel)) finished.add(p);
      });
      if (glob) await sub.psubscribe(name as unknown as string);
      else await sub.subscribe(name as unknown as string);
      await sub.subscribe(sentinel as unknown as string);
    }
    const pub = client();
    for (const c of channels) await pub.publish(redisChannel(PREFIX, c), '1');
    // A connection's messages arrive in order: its sentinel comes after all its deliveries.
    await pub.publish(sentinel, '1');
    await waitFor(() => finished.size === patterns.length, { message: 'every sentinel' });

    let extra = 0;
    let exact = 0;
    for (const [p, got] of received) {
      for (const c of channels) {
        // Redis must deliver exactly what a glob whose wildcards stand for whole segments matches:
        // every exact match, plus the wildcard over-matches the re-filter removes, and nothing a
        // literal segment would not match (an unescaped `?` or `[ab]` would widen that).
        expect(got.has(c), `${p.text} and ${c}`).toBe(globMatches(p.segments, c.split('^')));
        if (matches(p, c, rules)) exact++;
        else if (got.has(c)) extra++;
      }
    }
    // The sample exercises both sides: real matches, and over-matches the re-filter must drop.
    expect(exact).toBeGreaterThan(20);
    expect(extra).toBeGreaterThan(0);
  });

  it('keeps literal segments literal: glob characters in names neither widen nor narrow', () => {
    const p = parsePattern('a*^[ab]^?', rules) as Pattern;
    const sub = redisSubscription(PREFIX, p);
    expect(sub.glob).toBe(false);
    expect(decodeUnits(sub.name)).toBe(`${PREFIX}a*^[ab]^?`);
    const w = parsePattern('x\\*^*^>', rules) as Pattern;
    expect(decodeUnits(redisSubscription(PREFIX, w).name)).toBe('ck:c:x\\\\\\*^*^*');
  });
});
