/**
 * Two caretkv servers over one Redis Cluster (`store: redis-cluster://...`), over real sockets: a
 * write through one is read through the other, and OBSERVE on one sees the other's changes (they
 * reach it through the engine's change events). PUBLISH/SUBSCRIBE across nodes: redis-pubsub.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CaretClient, connect } from '../src/client/index.js';
import { LineClient } from './auth-helpers.js';
import { waitFor } from './helpers/net.js';
import { NO_REDIS, type RedisCluster, redisAvailable, startRedisCluster } from './helpers/redis.js';
import { startServer, type TestServer } from './helpers/server.js';

describe('two caretkv nodes over one Redis Cluster', () => {
  let cluster: RedisCluster | undefined;
  const servers: TestServer[] = [];
  const clients: CaretClient[] = [];

  beforeAll(async () => {
    if (!redisAvailable()) return;
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const s of servers.splice(0)) await s.close();
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  const node = async (): Promise<CaretClient> => {
    const url = `redis-cluster://${cluster!.seeds.map((s) => `${s.host}:${s.port}`).join(',')}`;
    const server = await startServer({ store: url });
    servers.push(server);
    const client = await connect({ host: server.host, port: server.port });
    clients.push(client);
    // The engine refuses commands until its cluster client is connected (UNAVAILABLE): wait.
    await waitFor(async () => (await client.exists('warm^up').catch(() => null)) === false, {
      message: 'the node to reach the cluster',
    });
    return client;
  };

  it('a write through one node is read through the other; OBSERVE sees the other node’s changes', async (ctx) => {
    if (cluster === undefined) ctx.skip(NO_REDIS);
    const a = await node();
    const b = await node();
    // A node's connections to the other masters open on first use: those first writes wait for
    // them rather than failing (a command never sent is retried; one in flight never is).
    const spread = Array.from({ length: 30 }, (_, i) => b.set(`spread${i}^k`, i));
    expect(await Promise.all(spread)).toEqual(spread.map(() => true));
    const changes = a.observe('users^>');
    await changes.ready;
    await b.set('users^1^name', 'ada');
    await b.incr('users^1^visits', 2);
    expect(await a.get('users^1^name')).toBe('ada');
    expect(await a.keys({ namespace: 'users^1' })).toMatchObject({ keys: ['name', 'visits'] });
    expect(await a.count('users')).toBe(2);
    await b.drop('users');
    const seen: unknown[] = [];
    for await (const change of changes) {
      seen.push({ ...change, seq: undefined });
      if (seen.length === 3) break;
    }
    expect(seen).toEqual([
      { type: 'change', key: 'users^1^name', op: 'set', value: 'ada', seq: undefined },
      { type: 'change', key: 'users^1^visits', op: 'incr', value: 2, seq: undefined },
      { type: 'change', key: 'users', op: 'drop', seq: undefined },
    ]);
    expect(await a.exists('users^1^name')).toBe(false);
  });

  it('answers a pipelined connection in request order although Redis answers out of order', async (ctx) => {
    if (cluster === undefined) ctx.skip(NO_REDIS);
    await node();
    const server = servers[0]!;
    const c = await LineClient.connect(server.port, server.host);
    try {
      // Namespaces on different masters, INFO (a script per namespace) and listings between
      // quick GETs: their Redis replies come back in another order than the requests went.
      const requests: Record<string, unknown>[] = [];
      for (let i = 0; i < 300; i++) {
        const ns = `order${i % 7}`;
        const kinds = [
          { action: 'SET', key: `${ns}^k${i}`, value: i },
          { action: 'GET', key: `${ns}^k${i - 7}` },
          { action: 'INFO' },
          { action: 'KEYS', namespace: ns, limit: 5 },
          { action: 'INCR', key: `${ns}^n` },
          {
            action: 'MSET',
            entries: [
              [`${ns}^a`, 1],
              [`other^b`, 2],
            ],
          },
        ];
        requests.push({ ...kinds[i % kinds.length]!, id: i });
      }
      const answers = requests.map(() => c.next(30_000));
      c.socket.write(requests.map((r) => `${JSON.stringify(r)}\n`).join(''));
      const ids = (await Promise.all(answers)).map((a) => a.id);
      expect(ids).toEqual(requests.map((r) => r.id));
    } finally {
      c.destroy();
    }
  });
});
