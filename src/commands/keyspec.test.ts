/**
 * Every command's key spec (KeySpec in table.ts) is the whole truth about the keys it touches:
 * each command runs against a store that records every call, and each touched key or namespace
 * must be one the spec names, with the spec's access. A handler that reads or writes a key its
 * spec does not declare would escape the permission checks built from the specs.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { openAuthority } from '../auth/authority.js';
import { decode, RequestError } from '../protocol/codec.js';
import type { AnyKeySpec, KeyAccess } from '../protocol/keyspec.js';
import { ACTIONS, type Request } from '../protocol/schema.js';
import { joinKey, parseNamespace } from '../store/keypath.js';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { createStats } from './dispatch.js';
import { defaultCommandTable } from './index.js';
import type { CommandContext, ServerInfo } from './table.js';

/** One request per action, naming keys that exist (so handlers go all the way to the store). */
const SAMPLES: Record<keyof typeof ACTIONS, Record<string, unknown>> = {
  PING: {},
  ECHO: { value: 1 },
  SET: { namespace: 'ns', key: 'a', value: 1 },
  GET: { namespace: 'ns', key: 'a' },
  DEL: { key: 'ns^a' },
  EXISTS: { namespace: 'ns', key: 'b' },
  INCR: { key: 'counter', by: 2 },
  CAS: { namespace: 'ns', key: 'a', expected: 1, value: 2 },
  MGET: { namespace: 'ns', keys: ['a', 'b', 'missing'] },
  MSET: { namespace: 'ns', entries: { a: 1, c: 3 } },
  KEYS: { namespace: 'ns', limit: 10 },
  NAMESPACES: { namespace: 'ns' },
  COUNT: { namespace: 'ns' },
  DROP: { namespace: 'ns^sub' },
  EXPIRE: { namespace: 'ns', key: 'a', ttl: 1000 },
  TTL: { namespace: 'ns', key: 'a' },
  PERSIST: { namespace: 'ns', key: 'a' },
  SUBSCRIBE: { channels: ['news^>'] },
  UNSUBSCRIBE: { channels: ['news^>'] },
  PUBLISH: { channel: 'news^1', message: 1 },
  OBSERVE: { keys: ['ns^>'] },
  UNOBSERVE: { keys: ['ns^>'] },
  INFO: {},
  HELP: {},
  AUTH: { user: 'u', password: 'p' },
  HELLO: {},
  CONFIG: { op: 'RELOAD' },
  REWRITE: {},
  BACKUP: {},
};

const READS = new Set(['get', 'exists', 'ttl', 'mget', 'keys', 'namespaces', 'count']);
const WRITES = new Set(['set', 'del', 'incr', 'cas', 'mset', 'expire', 'persist', 'drop']);
const NAMESPACE_CALLS = new Set(['keys', 'namespaces', 'count', 'drop']);

interface Touch {
  readonly method: string;
  readonly access: KeyAccess;
  /** The key, or for namespace calls the namespace. */
  readonly path: string;
}

/** The store, with every data call recorded as the keys (or namespace) it touches. */
function recording(inner: Store, touches: Touch[]): Store {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof prop !== 'string' || typeof value !== 'function') return value;
      if (!READS.has(prop) && !WRITES.has(prop)) return value.bind(target);
      return (...args: unknown[]) => {
        const access: KeyAccess = READS.has(prop) ? 'read' : 'write';
        const paths =
          prop === 'mget'
            ? (args[0] as string[])
            : prop === 'mset'
              ? (args[0] as [string, string][]).map(([k]) => k)
              : [args[0] as string];
        for (const path of paths) touches.push({ method: prop, access, path });
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** What the spec allows this request to touch. */
function allowed(spec: AnyKeySpec, req: Record<string, unknown>): { paths: Set<string>; namespace: boolean } {
  const ns = req.namespace as string | undefined;
  const join = (k: string) => joinKey(ns, k) as string;
  switch (spec.kind) {
    case 'none':
    case 'patterns':
      return { paths: new Set(), namespace: false };
    case 'key':
      return { paths: new Set([join(req.key as string)]), namespace: false };
    case 'keys':
      return { paths: new Set((req.keys as string[]).map(join)), namespace: false };
    case 'entries':
      return { paths: new Set(Object.keys(req.entries as object).map(join)), namespace: false };
    case 'subtree':
    case 'list':
      return { paths: new Set([parseNamespace(ns) as string]), namespace: true };
  }
}

const accessOf = (spec: AnyKeySpec): KeyAccess | undefined =>
  'access' in spec ? spec.access : spec.kind === 'list' ? 'read' : undefined;

const stores: MemoryStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

describe('key specs', () => {
  const table = defaultCommandTable();

  it('every action of the schema has a command with a key spec, and a sample here', () => {
    expect(table.list.map((c) => c.name).sort()).toEqual(Object.keys(ACTIONS).sort());
    for (const command of table.list) {
      expect(command.keys, command.name).toBeDefined();
      expect(SAMPLES[command.name], command.name).toBeDefined();
    }
  });

  it.each(table.list.map((c) => [c.name, c] as const))(
    '%s touches only what its key spec names',
    async (_, command) => {
      const memory = new MemoryStore();
      stores.push(memory);
      await memory.mset([
        ['ns^a', '1'],
        ['ns^b', '2'],
        ['ns^sub^c', '3'],
        ['counter', '5'],
      ]);
      const touches: Touch[] = [];
      const stats = createStats(table);
      const server: ServerInfo = {
        version: '0.0.0',
        startedAt: 0,
        now: () => 0,
        table,
        stats,
        connections: () => ({ connections: 0, connectionsTotal: 0, connectionsRejected: 0 }),
      };
      const ctx: CommandContext = {
        store: recording(memory, touches),
        server,
        conn: undefined,
        log: pino({ enabled: false }),
        auth: openAuthority(table).attach(undefined),
      };
      const req = decode(JSON.stringify({ action: command.name, ...SAMPLES[command.name] }));
      expect(req).not.toBeInstanceOf(RequestError);
      try {
        await (command.handler as (r: Request, c: CommandContext) => unknown)(req as Request, ctx);
      } catch {
        // A refusal (CONFIG without a file) is fine: what matters is what was touched before it.
      }

      const spec = command.keys;
      const { paths, namespace } = allowed(spec, SAMPLES[command.name]);
      for (const touch of touches) {
        const what = `${command.name} ${touch.method}(${touch.path})`;
        expect(NAMESPACE_CALLS.has(touch.method), what).toBe(namespace);
        expect(paths.has(touch.path), `${what} is not in its key spec ${JSON.stringify(spec)}`).toBe(true);
        expect(touch.access, `${what} needs ${touch.access} access`).toBe(accessOf(spec));
      }
      // A spec that names keys is exercised by its sample (so the check above is not vacuous).
      if (spec.kind !== 'none' && spec.kind !== 'patterns')
        expect(touches.length, command.name).toBeGreaterThan(0);
    },
  );
});
