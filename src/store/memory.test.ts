import { describe, expect, it } from 'vitest';
import { MemoryStore } from './memory.js';
import { describeStoreContract } from './store.contract.js';

describeStoreContract('MemoryStore', ({ now }) => new MemoryStore({ now }));
