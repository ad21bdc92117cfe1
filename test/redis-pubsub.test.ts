/**
 * PUBLISH and SUBSCRIBE across caretkv nodes over one Redis Cluster (pubsub/redis-relay.ts), over
 * real sockets: exact `*`/`>` semantics although Redis's globs are looser, one push per matching
 * pattern however many Redis subscriptions a message arrives on, `from` kept, order kept, `$`
 * channels local, one Redis subscription per distinct pattern, ACLs applied by each node, and a
 * `gap` when a node loses its subscribed connection.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AuthServer, type Line, LineClient, startAuthServer, users } from './auth-helpers.js';
import { waitFor } from './helpers/net.js';
import { NO_REDIS, type RedisCluster, redisAvailable, startRedisCluster } from './helpers/redis.js';

describe('PUBLISH and SUBSCRIBE across two caretkv nodes over one Redis Cluster', () => {
  let cluster: RedisCluster | undefined;
  let url = '';
  const servers: AuthServer[] = [];
  const open: LineClient[] = [];

  beforeAll(async () => {
    if (!redisAvailable()) return;
    cluster = await startRedisCluster({ masters: 3 });
    url = `redis-cluster://${cluster.seeds.map((s) => `${s.host}:${s.port}`).join(',')}`;
  }, 60_000);

  afterEach(async () => {
    for (const c of open.splice(0)) c.destroy();
    for (const s of servers.splice(0)) await s.close();
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  const node = async (file: Record<string, unknown> = {}): Promise<AuthServer> => {
    const server = await startAuthServer(file, { store: url });
    servers.push(server);
    return server;
  };

  const client = async (server: AuthServer, user?: [string, string]): Promise<LineClient> => {
    const c = await LineClient.connect(server.port, server.host);
    open.push(c);
    if (user !== undefined) {
      expect(await c.request({ action: 'AUTH', user: user[0], password: user[1] })).toMatchObject({
        ok: true,
      });
    }
    return c;
  };

  /** Publishes on `from` until `to` hears it: both nodes are connected to the cluster and linked. */
  const linked = async (to: LineClient, from: LineClient): Promise<void> => {
    expect(await to.request({ action: 'SUBSCRIBE', channels: ['probe^*'] })).toMatchObject({ ok: true });
    await waitFor(
      async () => {
        await from.request({ action: 'PUBLISH', channel: 'probe^x', message: 1 });
        return to.pushes.some((p) => p.channel === 'probe^x');
      },
      { message: 'a publish on one node to reach the other', timeoutMs: 15_000 },
    );
    expect(await to.request({ action: 'UNSUBSCRIBE', channels: ['probe^*'] })).toMatchObject({ ok: true });
    to.pushes.length = 0;
  };

  /** Redis pattern subscriptions over the whole cluster (each node counts its own clients'). */
  const redisPatterns = async (): Promise<number> => {
    let total = 0;
    for (const n of cluster!.nodes) total += Number(await cluster!.cli(n.port, 'PUBSUB', 'NUMPAT'));
    return total;
  };

  const messages = (c: LineClient): Line[] => c.pushes.filter((p) => p.event === 'message');
  const strip = (p: Line): Record<string, unknown> => ({
    channel: p.channel,
    pattern: p.pattern,
    message: p.message,
  });

  it('delivers with exact pattern semantics, once per matching pattern, in order, with from', async (ctx) => {
    if (cluster === undefined) ctx.skip(NO_REDIS);
    const [a, b] = [await node(), await node()];
    const sub = await client(a);
    const pub = await client(b);
    await linked(sub, pub);
    const patterns = ['news^*', 'news^>', 'news^eu', 'q[1]^*', 'x\\y^?'];
    expect(await sub.request({ action: 'SUBSCRIBE', channels: patterns })).toEqual({ ok: true, result: 5 });
    const published = [
      'news^eu', // news^*, news^>, news^eu: one Redis glob and one channel, three pushes
      'news^eu^fr', // news^> only (Redis's glob news^* matches it too: filtered out)
      'newsy^eu', // nothing
      'q1^x', // nothing: [1] is a literal, not a glob class
      'q[1]^x', // q[1]^*
      'x\\y^?', // the exact channel, backslash and question mark included
      'xy^?', // nothing
    ];
    for (const [i, channel] of published.entries()) {
      expect(await pub.request({ action: 'PUBLISH', channel, message: { i } })).toEqual({
        ok: true,
        result: 0,
      });
    }
    // Channels of different first segments travel through different masters: no order between
    // them, so wait for all six (a seventh would show within the wait for the last one's pushes).
    await waitFor(() => messages(sub).length >= 6, { message: 'six pushes' });
    await pub.request({ action: 'PUBLISH', channel: 'news^end', message: 'end' });
    await waitFor(() => messages(sub).some((p) => p.channel === 'news^end'), { message: 'the last message' });
    const byOrder = (x: Line, y: Line) =>
      (x.message as { i: number }).i - (y.message as { i: number }).i ||
      String(x.pattern).localeCompare(String(y.pattern));
    const seen = messages(sub)
      .filter((p) => p.channel !== 'news^end')
      .sort(byOrder);
    expect(seen.map(strip)).toEqual([
      { channel: 'news^eu', pattern: 'news^*', message: { i: 0 } },
      { channel: 'news^eu', pattern: 'news^>', message: { i: 0 } },
      { channel: 'news^eu', pattern: 'news^eu', message: { i: 0 } },
      { channel: 'news^eu^fr', pattern: 'news^>', message: { i: 1 } },
      { channel: 'q[1]^x', pattern: 'q[1]^*', message: { i: 4 } },
      { channel: 'x\\y^?', pattern: 'x\\y^?', message: { i: 5 } },
    ]);
    // `from` is the publisher's identity on its own node (its connection id); seq counts on.
    const local = await client(b);
    expect(await local.request({ action: 'SUBSCRIBE', channels: ['who^*'] })).toMatchObject({ ok: true });
    expect(await pub.request({ action: 'PUBLISH', channel: 'who^am', message: 'i' })).toMatchObject({
      result: 1,
    });
    expect(local.pushes[0]).toMatchObject({ channel: 'who^am', from: expect.any(Number) });
    expect(seen.every((p) => p.from === local.pushes[0]!.from)).toBe(true);
    const seqs = messages(sub).map((p) => p.seq as number);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));

    // One publisher's messages on one channel arrive in publish order, pipelined or not.
    sub.pushes.length = 0;
    for (let i = 0; i < 300; i++) pub.send({ action: 'PUBLISH', channel: 'news^eu', message: i });
    await waitFor(() => messages(sub).length === 900, { message: '300 messages x 3 patterns' });
    const order = messages(sub)
      .filter((p) => p.pattern === 'news^eu')
      .map((p) => p.message);
    expect(order).toEqual([...Array(300).keys()]);
    // INFO counts other nodes' publishes delivered here.
    const info = await sub.request({ action: 'INFO' });
    expect((info.result as { pubsub: { relayed: number } }).pubsub.relayed).toBeGreaterThanOrEqual(305);
  });

  it('holds one Redis subscription per distinct pattern, shared and counted', async (ctx) => {
    if (cluster === undefined) ctx.skip(NO_REDIS);
    const a = await node();
    const before = await redisPatterns();
    const subs = [await client(a), await client(a), await client(a)];
    for (const s of subs) await s.request({ action: 'SUBSCRIBE', channels: ['shared^*', 'shared^>'] });
    // news^* and news^> are both the glob `ck:m:shared^*`: one Redis pattern for six subscriptions.
    expect(await redisPatterns()).toBe(before + 1);
    await subs[0]!.request({ action: 'UNSUBSCRIBE' });
    // A connection that closes lets go of its subscriptions (else the pattern would stay below).
    subs[1]!.destroy();
    expect(await redisPatterns()).toBe(before + 1);
    await subs[2]!.request({ action: 'UNSUBSCRIBE', channels: ['shared^>'] });
    expect(await redisPatterns()).toBe(before + 1);
    await subs[2]!.request({ action: 'UNSUBSCRIBE', channels: ['shared^*'] });
    await waitFor(async () => (await redisPatterns()) === before, { message: 'the Redis pattern to go' });
  });

  it('keeps $ channels on their node and ignores what is not a caretkv message', async (ctx) => {
    if (cluster === undefined) ctx.skip(NO_REDIS);
    const a = await node();
    const sub = await client(a);
    expect(await sub.request({ action: 'SUBSCRIBE', channels: ['$sys^>', '>'] })).toMatchObject({
      ok: true,
    });
    // Anything that can write to Redis: a forged $sys message (which the `>` glob brings in, and
    // which `$sys^>` here would match), malformed envelopes, a line break. All through one Redis
    // node, so they reach the subscriber's node in this order: a forged message wrongly delivered
    // would arrive before the well-formed last one the test waits for.
    const redis = new Redis(cluster!.seeds[0]!);
    try {
      const forged = (channel: string, body: string) => redis.publish(`ck:m:${channel}`, body);
      // First, until one arrives: the node's subscribed connection is up.
      let probe = 0;
      await waitFor(
        async () => {
          await forged('probe^x', `x\n${++probe}\n"u"\n1`);
          return messages(sub).length > 0;
        },
        { message: 'the node to hear Redis' },
      );
      await forged('$sys^shutdown', 'y\n1\n"$server"\n{"bye":true}');
      await forged('evil^a', 'no envelope');
      await forged('evil^b', 'y\n2\n{not json}\n1');
      await forged('evil^c', 'y\n3\n"u"\n{"a":\n1}');
      await forged('evil^d^', 'y\n4\n"u"\n1');
      await forged('evil^ok', 'y\n5\n"u"\n{"fine":true}');
    } finally {
      redis.disconnect();
    }
    // Probes sent while the first was on its way may still come: they are not what is checked.
    const forgedSeen = () => messages(sub).filter((p) => p.channel !== 'probe^x');
    await waitFor(() => forgedSeen().some((p) => p.channel === 'evil^ok'), {
      message: 'the well-formed message',
    });
    expect(forgedSeen().map(strip)).toEqual([{ channel: 'evil^ok', pattern: '>', message: { fine: true } }]);
    expect(forgedSeen()[0]!.from).toBe('u');
  });

  it('applies each node’s ACLs: who may publish there, who may subscribe here', async (ctx) => {
    if (cluster === undefined) ctx.skip(NO_REDIS);
    const file = {
      users: await users({
        app: {
          password: 'app-pw',
          categories: ['pubsub'],
          subscribe: ['news^>'],
          publish: ['news^app^*'],
        },
      }),
    };
    const [a, b] = [await node(file), await node(file)];
    const sub = await client(a, ['app', 'app-pw']);
    const pub = await client(b, ['app', 'app-pw']);
    expect(await sub.request({ action: 'SUBSCRIBE', channels: ['secret^>'] })).toMatchObject({
      ok: false,
      error: { code: 'NOPERM' },
    });
    expect(await sub.request({ action: 'SUBSCRIBE', channels: ['news^>'] })).toMatchObject({ ok: true });
    expect(await pub.request({ action: 'PUBLISH', channel: 'news^other', message: 1 })).toMatchObject({
      ok: false,
      error: { code: 'NOPERM' },
    });
    await waitFor(
      async () => {
        await pub.request({ action: 'PUBLISH', channel: 'news^app^1', message: 2 });
        return messages(sub).length > 0;
      },
      { message: 'the allowed publish to cross', timeoutMs: 15_000 },
    );
    expect(messages(sub).every((p) => p.channel === 'news^app^1' && p.from === 'app')).toBe(true);
  });

  it('sends a backend gap when a node loses its subscribed connection, and delivers again after', async (ctx) => {
    if (cluster === undefined) ctx.skip(NO_REDIS);
    const [a, b] = [await node(), await node()];
    const sub = await client(a);
    const pub = await client(b);
    await linked(sub, pub);
    const observer = await client(a);
    expect(await sub.request({ action: 'SUBSCRIBE', channels: ['live^*'] })).toMatchObject({ ok: true });
    expect(await observer.request({ action: 'OBSERVE', keys: ['live^>'] })).toMatchObject({ ok: true });
    const bystander = await client(a);
    expect(await bystander.request({ action: 'SUBSCRIBE', channels: ['$sys^>'] })).toMatchObject({
      ok: true,
    });
    for (const n of cluster!.nodes) await cluster!.cli(n.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
    await waitFor(() => sub.pushes.length > 0 && observer.pushes.length > 0, { message: 'the gaps' });
    expect(sub.pushes[0]).toEqual({ event: 'gap', reason: 'backend' });
    expect(observer.pushes[0]).toEqual({ event: 'gap', reason: 'backend' });
    // Back: publishes and changes from the other node arrive again (the feed resubscribed).
    await waitFor(
      async () => {
        await pub.request({ action: 'PUBLISH', channel: 'live^x', message: 'again' });
        return messages(sub).length > 0;
      },
      { message: 'delivery after the reconnection', timeoutMs: 15_000 },
    );
    await waitFor(
      async () => {
        await pub.request({ action: 'SET', key: 'live^k', value: 1 });
        return observer.pushes.some((p) => p.event === 'change');
      },
      { message: 'changes after the reconnection', timeoutMs: 15_000 },
    );
    await bystander.request({ action: 'PING' });
    expect(bystander.pushes).toEqual([]);
  });
});
