import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { openAuthority } from '../auth/authority.js';
import { decode, RequestError } from '../protocol/codec.js';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { createStats, Dispatcher } from './dispatch.js';
import { defaultCommandTable } from './index.js';
import type { CommandContext, ServerInfo } from './table.js';

type Response = { id?: unknown; ok: boolean; result?: unknown; error?: { code: string; message: string } };

/** Every Store method wrapped to answer through a promise: what a durable or remote engine does. */
function asyncStore(inner: Store): Store {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || prop === 'stats' || prop === 'onChange') return v;
      return (...args: unknown[]) =>
        new Promise((resolve, reject) => {
          setImmediate(() => {
            try {
              resolve((v as (...a: unknown[]) => unknown).apply(target, args));
            } catch (err) {
              reject(err);
            }
          });
        });
    },
  });
}

const stores: MemoryStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

function setup(options: { async?: boolean; now?: () => number; store?: Store } = {}) {
  const memory = new MemoryStore(options.now ? { now: options.now } : {});
  stores.push(memory);
  const table = defaultCommandTable();
  const stats = createStats(table);
  const logged: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
  const server: ServerInfo = {
    version: '9.9.9',
    startedAt: 1000,
    now: () => 1500,
    table,
    stats,
    connections: () => ({ connections: 3, connectionsTotal: 10, connectionsRejected: 1 }),
  };
  const store = options.store ?? (options.async ? asyncStore(memory) : memory);
  const auth = openAuthority(table).attach(undefined);
  const ctx: CommandContext = { store, server, conn: undefined, log, auth };
  const dispatcher = new Dispatcher(table, stats);
  async function send(req: Record<string, unknown>): Promise<Response> {
    const decoded = decode(JSON.stringify(req));
    const line = decoded instanceof RequestError ? dispatcher.reject(decoded) : dispatcher.run(decoded, ctx);
    const text = await line;
    expect(text.endsWith('\n')).toBe(true);
    expect(text.indexOf('\n')).toBe(text.length - 1);
    return JSON.parse(text) as Response;
  }
  const ok = async (req: Record<string, unknown>) => {
    const r = await send(req);
    expect(r, JSON.stringify(req)).toMatchObject({ ok: true });
    return r.result;
  };
  const err = async (req: Record<string, unknown>) => {
    const r = await send(req);
    expect(r.ok, JSON.stringify(req)).toBe(false);
    return r.error!;
  };
  return { send, ok, err, stats, logged, memory, dispatcher, ctx };
}

describe.each([
  ['synchronous store', false],
  ['asynchronous store', true],
])('commands over a %s', (_name, isAsync) => {
  it('PING, ECHO', async () => {
    const { ok } = setup({ async: isAsync });
    expect(await ok({ action: 'PING' })).toBe('PONG');
    const value = { a: [1, 'two', null, { b: true }], 'ü^x': 1.5 };
    expect(await ok({ action: 'ECHO', value })).toEqual(value);
  });

  it('SET / GET / DEL / EXISTS with namespaces and key equivalences', async () => {
    const { ok, err } = setup({ async: isAsync });
    expect(await ok({ action: 'SET', key: 'users^42^name', value: 'Ada' })).toBe(true);
    expect(await ok({ action: 'GET', key: '^users^42^name' })).toBe('Ada');
    expect(await ok({ action: 'GET', namespace: 'users', key: '42^name' })).toBe('Ada');
    expect(await ok({ action: 'GET', namespace: '^users^42', key: 'name' })).toBe('Ada');
    expect(await ok({ action: 'EXISTS', key: 'users^42^name' })).toBe(true);
    expect(await ok({ action: 'SET', key: 'n', value: null })).toBe(true);
    expect(await ok({ action: 'GET', key: 'n' })).toBeNull();
    expect(await ok({ action: 'DEL', key: 'users^42^name' })).toBe(true);
    expect(await err({ action: 'DEL', key: 'users^42^name' })).toMatchObject({ code: 'KEY_NOT_FOUND' });
    expect(await err({ action: 'GET', key: 'users^42^name' })).toMatchObject({ code: 'KEY_NOT_FOUND' });
    expect(await ok({ action: 'EXISTS', key: 'users^42^name' })).toBe(false);
  });

  it('BAD_KEY for malformed paths, naming the field', async () => {
    const { err } = setup({ async: isAsync });
    for (const key of ['a^^b', 'a^', '^', '']) {
      expect(await err({ action: 'SET', key, value: 1 }), key).toMatchObject({ code: 'BAD_KEY' });
    }
    expect((await err({ action: 'GET', key: 'a'.repeat(2000) })).message).toMatch(/^key: /);
    expect((await err({ action: 'GET', namespace: 'users', key: '^42' })).code).toBe('BAD_KEY');
    expect((await err({ action: 'MGET', keys: ['a', 'b^^c'] })).message).toMatch(/^keys\[1\]: /);
    expect((await err({ action: 'DROP', namespace: '^' })).code).toBe('BAD_KEY');
  });

  it('SET conditions and TTL', async () => {
    const { ok, err } = setup({ async: isAsync });
    expect(await ok({ action: 'SET', key: 'k', value: 1, ifPresent: true })).toBe(false);
    expect(await ok({ action: 'SET', key: 'k', value: 1, ifAbsent: true })).toBe(true);
    expect(await ok({ action: 'SET', key: 'k', value: 2, ifAbsent: true })).toBe(false);
    expect(await ok({ action: 'GET', key: 'k' })).toBe(1);
    expect(await err({ action: 'SET', key: 'k', value: 3, ifAbsent: true, ifPresent: true })).toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/^ifPresent: /),
    });
    expect(await ok({ action: 'TTL', key: 'k' })).toBeNull();
    expect(await ok({ action: 'EXPIRE', key: 'k', ttl: 60_000 })).toBe(true);
    expect(await ok({ action: 'TTL', key: 'k' })).toBeGreaterThan(0);
    expect(await ok({ action: 'PERSIST', key: 'k' })).toBe(true);
    expect(await ok({ action: 'PERSIST', key: 'k' })).toBe(false);
    expect(await err({ action: 'EXPIRE', key: 'nope', ttl: 5 })).toMatchObject({ code: 'KEY_NOT_FOUND' });
    expect(await err({ action: 'TTL', key: 'nope' })).toMatchObject({ code: 'KEY_NOT_FOUND' });
  });

  it('INCR: missing starts at 0, WRONG_TYPE, OVERFLOW', async () => {
    const { ok, err } = setup({ async: isAsync });
    expect(await ok({ action: 'INCR', key: 'c' })).toBe(1);
    expect(await ok({ action: 'INCR', key: 'c', by: -5 })).toBe(-4);
    await ok({ action: 'SET', key: 's', value: 'x' });
    expect(await err({ action: 'INCR', key: 's' })).toMatchObject({ code: 'WRONG_TYPE' });
    await ok({ action: 'SET', key: 'big', value: Number.MAX_SAFE_INTEGER });
    expect(await err({ action: 'INCR', key: 'big' })).toMatchObject({ code: 'OVERFLOW' });
    expect(await ok({ action: 'GET', key: 'big' })).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('CAS compares deeply', async () => {
    const { ok } = setup({ async: isAsync });
    expect(await ok({ action: 'CAS', key: 'k', expected: null, value: 1 })).toBe(false);
    await ok({ action: 'SET', key: 'k', value: { a: 1, b: [2] } });
    expect(await ok({ action: 'CAS', key: 'k', expected: { b: [2], a: 1 }, value: 'new' })).toBe(true);
    expect(await ok({ action: 'CAS', key: 'k', expected: { a: 1 }, value: 'x' })).toBe(false);
    expect(await ok({ action: 'GET', key: 'k' })).toBe('new');
  });

  it('MGET leaves missing keys out; MSET is all or none', async () => {
    const { ok, err } = setup({ async: isAsync });
    expect(await ok({ action: 'MSET', namespace: 'u', entries: { a: 1, 'b^c': null, __proto__x: 2 } })).toBe(
      true,
    );
    expect(await ok({ action: 'MGET', keys: ['u^a', 'u^b^c', 'u^zz', '^u^a'] })).toEqual({
      'u^a': 1,
      'u^b^c': null,
      '^u^a': 1,
    });
    expect(await err({ action: 'MSET', entries: { fresh: 1, 'bad^^key': 2 } })).toMatchObject({
      code: 'BAD_KEY',
    });
    expect(await err({ action: 'GET', key: 'fresh' })).toMatchObject({ code: 'KEY_NOT_FOUND' });
  });

  it('MSET and MGET keep __proto__ a plain key', async () => {
    const { ok, send } = setup({ async: isAsync });
    const r = await send(JSON.parse('{"action":"MSET","entries":{"__proto__":{"polluted":1}}}'));
    expect(r.ok).toBe(true);
    const got = (await ok({ action: 'MGET', keys: ['__proto__'] })) as Record<string, unknown>;
    expect(Object.keys(got)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('KEYS / NAMESPACES page by cursor; COUNT and DROP cover the subtree', async () => {
    const { ok } = setup({ async: isAsync });
    const entries: Record<string, number> = {};
    for (let i = 0; i < 25; i++) entries[`k${String(i).padStart(2, '0')}`] = i;
    await ok({ action: 'MSET', namespace: 'ns', entries });
    await ok({ action: 'MSET', entries: { 'ns^child^a': 1, 'ns^other^b': 2, 'ns^other^deep^c': 3 } });

    const names: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = (await ok({
        action: 'KEYS',
        namespace: 'ns',
        limit: 10,
        ...(after ? { after } : {}),
      })) as {
        keys: string[];
        next: string | null;
      };
      expect(page.keys.length).toBeLessThanOrEqual(10);
      names.push(...page.keys);
      if (page.next === null) break;
      after = page.next;
    }
    expect(names).toEqual(Object.keys(entries));
    expect(await ok({ action: 'NAMESPACES', namespace: 'ns' })).toEqual({
      namespaces: ['child', 'other'],
      next: null,
    });
    expect(await ok({ action: 'NAMESPACES' })).toEqual({ namespaces: ['ns'], next: null });
    expect(await ok({ action: 'COUNT', namespace: 'ns' })).toBe(28);
    expect(await ok({ action: 'COUNT' })).toBe(28);
    expect(await ok({ action: 'DROP', namespace: 'ns^other' })).toBe(2);
    expect(await ok({ action: 'COUNT', namespace: '^ns' })).toBe(26);
    expect(await ok({ action: 'DROP', namespace: 'nothing' })).toBe(0);
  });

  it('INFO reports version, uptime, connections, counters, keys and memory', async () => {
    const { ok, err } = setup({ async: isAsync });
    await ok({ action: 'SET', key: 'a^b', value: 1, ttl: 60_000 });
    await err({ action: 'GET', key: 'zz' });
    const info = (await ok({ action: 'INFO' })) as { memory: { rss: number; heapUsed: number } };
    expect(info).toMatchObject({
      version: '9.9.9',
      uptimeMs: 500,
      connections: { current: 3, total: 10, rejected: 1 },
      commands: { total: 3, byAction: { SET: 1, GET: 1, INFO: 1, PING: 0 } },
      errors: { total: 1, byCode: { KEY_NOT_FOUND: 1 } },
      keys: 1,
      keysWithTtl: 1,
      namespaces: 1,
    });
    expect(info.memory.rss).toBeGreaterThan(0);
    expect(info.memory.heapUsed).toBeGreaterThan(0);
  });

  it('HELP lists every action with its summary', async () => {
    const { ok } = setup({ async: isAsync });
    const help = (await ok({ action: 'HELP' })) as { action: string; summary: string }[];
    expect(help.map((h) => h.action)).toEqual(Object.keys((await import('../protocol/schema.js')).ACTIONS));
    expect(help.every((h) => h.summary.length > 0)).toBe(true);
  });
});

describe('TTL semantics with a controllable clock', () => {
  it('a key is gone once its ttl has passed, and TTL counts down', async () => {
    let now = 1_000_000;
    const { ok, err } = setup({ now: () => now });
    await ok({ action: 'SET', key: 'k', value: 'v', ttl: 100 });
    expect(await ok({ action: 'TTL', key: 'k' })).toBe(100);
    now += 99;
    expect(await ok({ action: 'TTL', key: 'k' })).toBe(1);
    expect(await ok({ action: 'GET', key: 'k' })).toBe('v');
    now += 1;
    expect(await err({ action: 'GET', key: 'k' })).toMatchObject({ code: 'KEY_NOT_FOUND' });
    expect(await ok({ action: 'EXISTS', key: 'k' })).toBe(false);
    expect(await ok({ action: 'KEYS' })).toEqual({ keys: [], next: null });
  });

  it('SET without ttl clears an earlier TTL; INCR keeps it', async () => {
    let now = 0;
    const { ok } = setup({ now: () => now });
    await ok({ action: 'SET', key: 'a', value: 1, ttl: 50 });
    await ok({ action: 'SET', key: 'a', value: 2 });
    expect(await ok({ action: 'TTL', key: 'a' })).toBeNull();
    await ok({ action: 'SET', key: 'c', value: 1, ttl: 50 });
    expect(await ok({ action: 'INCR', key: 'c' })).toBe(2);
    now = 10;
    expect(await ok({ action: 'TTL', key: 'c' })).toBe(40);
  });
});

describe('failures', () => {
  it('maps an unexpected exception to INTERNAL, logged with its stack', async () => {
    const broken = new MemoryStore();
    stores.push(broken);
    broken.get = () => {
      throw new TypeError('disk on fire');
    };
    const { err, logged, ok } = setup({ store: broken });
    expect(await err({ action: 'GET', key: 'a', id: 1 })).toMatchObject({ code: 'INTERNAL' });
    const line = logged.find((l) => l.msg === 'command failed') as { err: { stack: string }; action: string };
    expect(line.action).toBe('GET');
    expect(line.err.stack).toContain('disk on fire');
    expect(await ok({ action: 'PING' })).toBe('PONG');
  });

  it('maps a rejected promise the same way, and keeps the id', async () => {
    const broken = new MemoryStore();
    stores.push(broken);
    broken.exists = () => Promise.reject(new Error('network down')) as never;
    const { send, stats } = setup({ store: broken });
    expect(await send({ action: 'EXISTS', key: 'a', id: 'r' })).toMatchObject({
      id: 'r',
      ok: false,
      error: { code: 'INTERNAL' },
    });
    expect(stats.errors.INTERNAL).toBe(1);
  });
});
