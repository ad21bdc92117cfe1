import { describe, expect, it } from 'vitest';
import { createStore, parseStoreSpec, STORE_ENGINES } from './factory.js';
import { MemoryStore } from './memory.js';

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
});
