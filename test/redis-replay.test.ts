/**
 * A write whose reply is lost with its connection is answered UNAVAILABLE and never applied a
 * second time. A TCP proxy between a caretkv node and Redis swallows the reply to one write
 * script and drops that connection: ioredis's default would send the write again after it
 * reconnects (an INCR counted twice), and a cluster client would retry it on a new connection;
 * the Redis engine's clients must not.
 */
import net from 'node:net';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { redisClusterOptions } from '../src/store/factory.js';
import { RedisStore } from '../src/store/redis/engine.js';
import { waitFor } from './helpers/net.js';
import {
  NO_REDIS,
  type RedisCluster,
  type RedisServer,
  redisAvailable,
  startRedisCluster,
  startRedisServer,
} from './helpers/redis.js';
import { startServer } from './helpers/server.js';

/** Forwards to Redis; armed, the next connection that sends a script has its reply swallowed and is cut. */
class CuttingProxy {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  armed = false;
  cuts = 0;

  constructor(target: { host: string; port: number }) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      this.sockets.add(client).add(upstream);
      let marked = false;
      client.on('data', (chunk) => {
        if (this.armed && chunk.includes('EVAL')) {
          this.armed = false;
          marked = true;
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk) => {
        if (!marked) {
          client.write(chunk);
          return;
        }
        // Redis ran the script; its reply never arrives.
        this.cuts++;
        client.destroy();
        upstream.destroy();
      });
      const end = (): void => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('a write whose reply is lost', () => {
  let redis: RedisServer | undefined;
  beforeAll(async () => {
    if (redisAvailable()) redis = await startRedisServer();
  }, 30_000);
  afterAll(async () => {
    await redis?.stop();
  });

  it('answers UNAVAILABLE and is not sent again after the reconnection (INCR counts once)', async (ctx) => {
    if (redis === undefined) ctx.skip(NO_REDIS);
    const proxy = new CuttingProxy(redis!);
    const port = await proxy.listen();
    const server = await startServer({ store: `redis://127.0.0.1:${port}` });
    const db = await connect({ host: server.host, port: server.port });
    try {
      await waitFor(async () => (await db.exists('warm^up').catch(() => null)) === false, {
        message: 'the node to reach Redis',
      });
      expect(await db.incr('replay^n')).toBe(1); // the script is loaded: the next one is EVALSHA
      proxy.armed = true;
      await expect(db.incr('replay^n')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      expect(proxy.cuts).toBe(1);
      // Back: Redis applied the lost one once (2), and nothing applied it again.
      await waitFor(async () => (await db.get('replay^n').catch(() => null)) !== null, {
        message: 'the node to reconnect',
      });
      expect(await db.get('replay^n')).toBe(2);
      expect(await db.incr('replay^n')).toBe(3);
    } finally {
      await db.close();
      await server.close();
      await proxy.close();
    }
  });

  it('over a cluster too: the master’s connection drops mid-INCR, the INCR fails and counts once', async (ctx) => {
    if (redis === undefined) ctx.skip(NO_REDIS);
    let cluster: RedisCluster | undefined;
    let proxy: CuttingProxy | undefined;
    let store: RedisStore | undefined;
    try {
      cluster = await startRedisCluster({ masters: 3 });
      const master = (await cluster.masterOf(await cluster.slotOf('replay')))!;
      proxy = new CuttingProxy({ host: '127.0.0.1', port: master });
      const port = await proxy.listen();
      // The engine's own client options, with the master of {replay}'s slot reached through the proxy.
      const client = new Cluster([...cluster.seeds], {
        ...redisClusterOptions(2000),
        natMap: { [`127.0.0.1:${master}`]: { host: '127.0.0.1', port } },
      });
      client.on('error', () => {});
      await new Promise((resolve) => client.once('ready', resolve));
      store = new RedisStore({ client });
      await waitFor(async () => (await store!.incr('replay^n', 1).catch(() => 0)) === 1, {
        message: 'the first INCR',
      });
      proxy.armed = true;
      await expect(store.incr('replay^n', 1)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      expect(proxy.cuts).toBe(1);
      await waitFor(async () => (await store!.get('replay^n').catch(() => null)) !== null, {
        message: 'the master connection to come back',
      });
      expect(await store.get('replay^n')).toBe('2');
    } finally {
      await store?.close();
      await proxy?.close();
      await cluster?.stop();
    }
  }, 60_000);
});
