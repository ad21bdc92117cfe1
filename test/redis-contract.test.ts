/**
 * The Store contract suite (src/store/store.contract.ts) against the Redis Cluster engine on a
 * real 3-master cluster, with the traits the engine declares: its own (real) clock, and MSET
 * within one top-level namespace.
 */
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, it } from 'vitest';
import { RedisStore } from '../src/store/redis/engine.js';
import { describeStoreContract } from '../src/store/store.contract.js';
import { NO_REDIS, type RedisCluster, redisAvailable, startRedisCluster } from './helpers/redis.js';

if (redisAvailable()) {
  let cluster: RedisCluster | undefined;
  let prefixes = 0;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });
  describeStoreContract(
    'RedisStore on a 3-master Redis Cluster',
    async () => {
      // A prefix per test: every test starts from an empty store on the same cluster.
      const store = new RedisStore({ client: new Cluster([...cluster!.seeds]), prefix: `c${prefixes++}:` });
      await store.subscribed;
      return store;
    },
    { msetAcrossNamespaces: false, clock: 'real' },
  );
} else {
  it('Store contract: RedisStore on a 3-master Redis Cluster', (ctx) => ctx.skip(NO_REDIS));
}
