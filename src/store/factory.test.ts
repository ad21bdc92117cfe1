import { describe, expect, it } from 'vitest';
import { createStore, parseStoreSpec, STORE_ENGINES } from './factory.js';
import { MemoryStore } from './memory.js';
import type { Store } from './store.js';

const logger = { debug() {}, info() {}, warn() {}, error() {} };

describe('store factory', () => {
  it('builds the in-memory engine by name', async () => {
    expect(STORE_ENGINES).toContain('memory');
    expect(parseStoreSpec('memory')).toEqual({ engine: 'memory', target: '' });
    const store = createStore('memory', { logger });
    expect(store).toBeInstanceOf(MemoryStore);
    await store.close();
  });

  it('reads engine URLs, checks their addresses, and refuses engines it does not know', () => {
    expect(STORE_ENGINES).toEqual(['memory', 'redis-cluster', 'redis']);
    expect(parseStoreSpec('redis-cluster://10.0.0.1:7000,10.0.0.2:7000')).toEqual({
      engine: 'redis-cluster',
      target: '10.0.0.1:7000,10.0.0.2:7000',
    });
    expect(parseStoreSpec('redis://localhost:6379')).toEqual({ engine: 'redis', target: 'localhost:6379' });
    expect(parseStoreSpec('redis://a:1,b:2')).toBe('redis:// needs host:port (got "a:1,b:2")');
    expect(parseStoreSpec('redis-cluster://a:1,b')).toBe(
      'redis-cluster:// needs host:port[,host:port...] (got "a:1,b")',
    );
    expect(parseStoreSpec('redis-cluster://:7000')).toMatch(/needs host:port/);
    expect(parseStoreSpec('redis-cluster://h:70000')).toMatch(/needs host:port/);
    expect(parseStoreSpec('redis-cluster')).toMatch(/needs host:port/);
    expect(parseStoreSpec('memory://x')).toMatch(/takes no address/);
    expect(parseStoreSpec('etcd://x:1')).toBe(
      'unknown storage engine "etcd" (known engines: memory, redis-cluster, redis)',
    );
    expect(parseStoreSpec('Memory')).toMatch(/must be an engine name or an engine URL/);
    expect(parseStoreSpec('://x')).toMatch(/must be an engine name/);
    expect(() => createStore('nosuch', { logger })).toThrow(/unknown storage engine "nosuch"/);
  });

  it('reads ?wait=N&wait-timeout=ms on Redis URLs and says what is wrong with them', () => {
    const spec = (text: string) => parseStoreSpec(text);
    expect(spec('redis-cluster://a:1,b:2?wait=1')).toEqual({
      engine: 'redis-cluster',
      target: 'a:1,b:2?wait=1',
    });
    expect(spec('redis-cluster://a:1?wait=2&wait-timeout=250')).toMatchObject({ engine: 'redis-cluster' });
    expect(spec('redis://a:1?wait-timeout=250&wait=0')).toMatchObject({ engine: 'redis' });
    expect(spec('redis-cluster://a:1,b?wait=1')).toBe(
      'redis-cluster:// needs host:port[,host:port...] (got "a:1,b")',
    );
    expect(spec('redis-cluster://a:1?wait=x')).toBe(
      'redis-cluster://: wait must be how many replicas acknowledge each write, an integer from 0 to 100 (got "x")',
    );
    for (const bad of ['-1', '1.5', '', '101', '1e2'])
      expect(spec(`redis://a:1?wait=${bad}`)).toMatch(/wait must be/);
    expect(spec('redis://a:1?wait=1&wait-timeout=0')).toBe(
      'redis://: wait-timeout must be milliseconds, an integer from 1 to 60000 (got "0")',
    );
    for (const bad of ['60001', 'soon', '', '10ms']) {
      expect(spec(`redis://a:1?wait=1&wait-timeout=${bad}`)).toMatch(/wait-timeout must be milliseconds/);
    }
    expect(spec('redis://a:1?wait-timeout=100')).toBe(
      'redis://: wait-timeout needs wait=N (how many replicas each write waits for)',
    );
    expect(spec('redis-cluster://a:1?wiat=1')).toBe(
      'redis-cluster:// takes the parameters wait and wait-timeout (got "wiat")',
    );
    expect(spec('redis-cluster://a:1?')).toMatch(/takes the parameters wait and wait-timeout \(got ""\)/);
    expect(spec('redis-cluster://a:1?wait=1&wait=2')).toBe('redis-cluster://: wait is given twice');
  });

  it('passes wait to the Redis engine and leaves its WAIT room in the command timeout', async () => {
    const peek = (store: Store) => {
      const { wait, client } = store as unknown as {
        wait: unknown;
        client: { options: { commandTimeout?: number; redisOptions?: { commandTimeout?: number } } };
      };
      return { wait, timeout: client.options.redisOptions?.commandTimeout ?? client.options.commandTimeout };
    };
    // Nothing listens on port 1: the stores never connect, and close at once.
    const made = [
      createStore('redis-cluster://127.0.0.1:1?wait=1', { logger }),
      createStore('redis://127.0.0.1:1?wait=2&wait-timeout=300', { logger }),
      createStore('redis-cluster://127.0.0.1:1', { logger }),
    ];
    try {
      expect(made.map(peek)).toEqual([
        { wait: { replicas: 1, timeoutMs: 1000 }, timeout: 3000 },
        { wait: { replicas: 2, timeoutMs: 300 }, timeout: 2300 },
        { wait: undefined, timeout: 2000 },
      ]);
    } finally {
      await Promise.all(made.map((store) => store.close()));
    }
  });
});
