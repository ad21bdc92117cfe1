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

  it('reads an engine URL and refuses engines it does not know, listing the known ones', () => {
    expect(parseStoreSpec('redis-cluster://10.0.0.1:7000,10.0.0.2:7000')).toBe(
      'unknown storage engine "redis-cluster" (known engines: memory)',
    );
    expect(parseStoreSpec('Memory')).toMatch(/must be an engine name or an engine URL/);
    expect(parseStoreSpec('://x')).toMatch(/must be an engine name/);
    expect(() => createStore('nosuch', { logger })).toThrow(/unknown storage engine "nosuch"/);
  });
});
