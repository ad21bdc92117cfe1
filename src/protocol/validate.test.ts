import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { ACTIONS, type ActionName } from './schema.js';
import { COMPILED, CompiledAction, compileValidators, validationMessage } from './validate.js';

function message(action: ActionName, req: Record<string, unknown>): string | null {
  const compiled = COMPILED.get(action)!;
  // Read `check` again after the call: the first call swaps the compiling stub for the validator.
  return compiled.check({ action, ...req }) ? null : validationMessage(compiled.check);
}

describe('validation messages name the field', () => {
  it.each([
    ['SET', { value: 1 }, 'key: is required'],
    ['SET', { key: 'a' }, 'value: is required'],
    ['SET', { key: 1, value: 1 }, 'key: must be a string'],
    ['SET', { key: 'a', value: 1, ttl: 0 }, 'ttl: must be >= 1'],
    ['SET', { key: 'a', value: 1, ttl: 1.5 }, 'ttl: must be an integer'],
    ['SET', { key: 'a', value: 1, ttl: 2 ** 46 }, `ttl: must be <= ${2 ** 45}`],
    ['SET', { key: 'a', value: 1, ifAbsent: 'yes' }, 'ifAbsent: must be a boolean'],
    ['SET', { key: 'a', value: 1, foo: 1 }, 'foo: unknown field'],
    ['SET', { key: 'a', value: 1, namespace: null }, 'namespace: must be a string'],
    ['GET', { key: 'a', id: true }, 'id: must be a string or a number'],
    ['GET', { key: 'a', value: 1 }, 'value: unknown field'],
    ['INCR', { key: 'a', by: 2 ** 53 }, 'by: must be <= 9007199254740991'],
    ['MGET', { keys: [] }, 'keys: must have at least 1 item'],
    ['MGET', { keys: ['a', 3] }, 'keys[1]: must be a string'],
    ['MGET', { keys: 'a' }, 'keys: must be an array'],
    ['MSET', { entries: {} }, 'entries: must have at least 1 entry'],
    ['MSET', { entries: [] }, 'entries: must be an object'],
    ['KEYS', { limit: 0 }, 'limit: must be >= 1'],
    ['KEYS', { limit: 10_001 }, 'limit: must be <= 10000'],
    ['KEYS', { after: 5 }, 'after: must be a string'],
    ['DROP', {}, 'namespace: is required'],
    ['EXPIRE', { key: 'a' }, 'ttl: is required'],
    ['CAS', { key: 'a', value: 1 }, 'expected: is required'],
    ['PING', { key: 'a' }, 'key: unknown field'],
  ] as [ActionName, Record<string, unknown>, string][])('%s %j -> %s', (action, req, expected) => {
    expect(message(action, req)).toBe(expected);
  });

  it('treats null as a value, not as a missing one', () => {
    expect(message('SET', { key: 'a', value: null })).toBeNull();
    expect(message('CAS', { key: 'a', expected: null, value: null })).toBeNull();
  });

  it('caps MGET and MSET batches', () => {
    const keys = Array.from({ length: 10_001 }, (_, i) => `k${i}`);
    expect(message('MGET', { keys })).toBe('keys: must have at most 10000 items');
    expect(message('MSET', { entries: Object.fromEntries(keys.map((k) => [k, 1])) })).toBe(
      'entries: must have at most 10000 entries',
    );
  });

  it('every action refuses fields it does not declare, and accepts its own minimal request', () => {
    const minimal: Record<ActionName, Record<string, unknown>> = {
      PING: {},
      ECHO: { value: 1 },
      SET: { key: 'a', value: 1 },
      GET: { key: 'a' },
      DEL: { key: 'a' },
      EXISTS: { key: 'a' },
      INCR: { key: 'a' },
      CAS: { key: 'a', expected: 1, value: 2 },
      MGET: { keys: ['a'] },
      MSET: { entries: { a: 1 } },
      KEYS: {},
      NAMESPACES: {},
      COUNT: {},
      DROP: { namespace: 'a' },
      EXPIRE: { key: 'a', ttl: 1 },
      TTL: { key: 'a' },
      PERSIST: { key: 'a' },
      SUBSCRIBE: { channels: ['a'] },
      UNSUBSCRIBE: {},
      PUBLISH: { channel: 'a', message: null },
      OBSERVE: { keys: ['a'] },
      UNOBSERVE: {},
      INFO: {},
      HELP: {},
      AUTH: { user: 'u', password: 'p' },
      HELLO: {},
      CONFIG: { op: 'RELOAD' },
      REWRITE: {},
      BACKUP: {},
    };
    for (const action of Object.keys(ACTIONS) as ActionName[]) {
      expect(message(action, minimal[action]), action).toBeNull();
      expect(message(action, { ...minimal[action], id: 1, extra: 1 }), action).toBe('extra: unknown field');
    }
  });

  it('ignores a polluted Object.prototype: only own properties count', () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.key = 'polluted';
    try {
      expect(message('GET', {})).toBe('key: is required');
    } finally {
      delete proto.key;
    }
  });
});

describe('schemas', () => {
  // validate.ts skips the meta-schema check at start-up (it costs start time); this is that check.
  it.each(Object.keys(ACTIONS))('%s request schema is valid JSON Schema', (name) => {
    const ajv = new Ajv({ strict: true, allowUnionTypes: true });
    const valid = ajv.validateSchema(ACTIONS[name as ActionName].request);
    expect(ajv.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });
});

describe('validators compile on first use', () => {
  it('the first call of a fresh validator compiles it and answers as a compiled one would', () => {
    const fresh = new CompiledAction('SET', ACTIONS.SET);
    expect(fresh.compiled).toBe(false);
    const stub = fresh.check;
    expect(fresh.check({ action: 'SET', key: 1, value: 1 })).toBe(false);
    expect(fresh.compiled).toBe(true);
    expect(fresh.check).not.toBe(stub);
    expect(validationMessage(fresh.check)).toBe('key: must be a string');
    expect(fresh.check({ action: 'SET', key: 'a', value: 1 })).toBe(true);
    // A stub kept from before still works: it hands over to the compiled validator.
    expect(stub({ action: 'SET', key: 'a', value: 1 })).toBe(true);
    expect(fresh.compile()).toBe(fresh.check);
  });

  it('compileValidators() leaves none uncompiled', () => {
    compileValidators();
    expect([...COMPILED.values()].filter((c) => !c.compiled).map((c) => c.name)).toEqual([]);
  });
});
