/**
 * Pub/sub across real OS processes: a `caretkv serve` process, and publishers and subscribers
 * that are separate `node` processes using the built client (test/fixtures/pubsub-agent.mjs).
 * Needs `npm run build` (npm test builds first). No timing assertions: every wait is for an event
 * or a condition with a deadline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { type CaretClient, connect } from '../src/client/index.js';
import { type SpawnedServer, spawnServer } from './helpers/cli.js';
import { waitFor } from './helpers/net.js';

const AGENT = fileURLToPath(new URL('./fixtures/pubsub-agent.mjs', import.meta.url));
const WEAK_OWNER = fileURLToPath(new URL('./fixtures/weak-owner.mjs', import.meta.url));
const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));

type Line = Record<string, unknown>;
type Item = {
  type: string;
  channel?: string;
  pattern?: string;
  key?: string;
  op?: string;
  value?: unknown;
  message?: unknown;
  from?: unknown;
  seq: number;
  dropped?: number;
};

interface Agent {
  child: ChildProcess;
  lines: Line[];
  items(): Item[];
  stderr(): string;
  /** Wait for a line matching `predicate` (fails early if the process exits first). */
  line(predicate: (line: Line) => boolean, timeoutMs?: number): Promise<Line>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const agents: Agent[] = [];
const servers: SpawnedServer[] = [];
const clients: CaretClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const a of agents.splice(0)) {
    if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
    await a.exited;
  }
  for (const s of servers.splice(0)) await s.kill();
});

function spawnAgent(args: readonly (string | number)[], nodeArgs: readonly string[] = []): Agent {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` first`);
  const child = spawn(process.execPath, [...nodeArgs, AGENT, ...args.map(String)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: Line[] = [];
  let partial = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    const parts = (partial + text).split('\n');
    partial = parts.pop() ?? '';
    for (const part of parts) lines.push(JSON.parse(part) as Line);
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const agent: Agent = {
    child,
    lines,
    items: () => lines.filter((l) => 'item' in l).map((l) => l.item as Item),
    stderr: () => stderr,
    exited,
    async line(predicate, timeoutMs = 30_000) {
      await waitFor(
        () => {
          if (lines.some(predicate)) return true;
          if (child.exitCode !== null || child.signalCode !== null) {
            throw new Error(`agent ${args.join(' ')} exited first: ${stderr}`);
          }
          return false;
        },
        { timeoutMs, message: `a line from agent ${args.join(' ')}` },
      );
      return lines.find(predicate)!;
    },
  };
  agents.push(agent);
  return agent;
}

async function serve(flags: readonly string[] = []): Promise<SpawnedServer> {
  const server = await spawnServer(['serve', ...flags]);
  servers.push(server);
  return server;
}

async function client(port: number): Promise<CaretClient> {
  const db = await connect({ port, retryStrategy: () => null });
  clients.push(db);
  return db;
}

/** The `i` of each flood/publish message, in arrival order. */
const indices = (items: Item[]) =>
  items
    .filter((i) => i.type === 'message' && typeof i.message === 'object')
    .map((i) => (i.message as { i: number }).i);

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('pub/sub between processes', () => {
  it('one publisher process reaches subscriber processes by pattern; $sys is the server’s alone', async () => {
    const server = await serve();
    const a = spawnAgent(['subscribe', server.port, 'news^*']);
    const b = spawnAgent(['subscribe', server.port, 'news^>', 'sports^eu']);
    const c = spawnAgent(['subscribe', server.port, 'sports^*']);
    const sys = spawnAgent(['subscribe', server.port, '$sys^>']);
    await Promise.all([a, b, c, sys].map((s) => s.line((l) => l.ready === true)));
    // This process watches with wildcards that must never reach $sys.
    const watcher = await client(server.port);
    const wild = watcher.subscribe('>', '*^shutdown', '*^*');
    await wild.ready;

    const pub = spawnAgent(['publish', server.port, 'news^eu', 50]);
    // a, b and the watcher's `>` and `*^*`: four deliveries per message.
    expect(await pub.line((l) => 'published' in l)).toEqual({
      published: 50,
      delivered: 200,
      errors: {},
      ping: 'PONG',
    });
    const sports = spawnAgent(['publish', server.port, 'sports^eu', 3]);
    expect(await sports.line((l) => 'published' in l)).toMatchObject({ published: 3, delivered: 3 * 4 });
    await watcher.publish('news^eu', '$end');
    await watcher.publish('sports^eu', '$end');
    for (const s of [a, b, c]) expect((await s.exited).code).toBe(0);

    expect(indices(a.items())).toEqual(range(50));
    expect(a.items().every((i) => i.pattern === 'news^*' && i.channel === 'news^eu')).toBe(true);
    // One publisher, one channel: publish order, every seq present.
    expect(a.items().map((i) => i.seq)).toEqual(range(51).map((i) => i + 1));
    expect(indices(b.items())).toEqual([...range(50), ...range(3)]);
    expect(indices(c.items())).toEqual(range(3));
    const from = a.items()[0]!.from;
    expect(typeof from).toBe('number');
    expect(b.items().every((i) => i.message === '$end' || i.from === from || i.channel === 'sports^eu')).toBe(
      true,
    );

    // A client cannot post a system message.
    const evil = spawnAgent(['publish', server.port, '$sys^shutdown', 3]);
    expect(await evil.line((l) => 'published' in l)).toEqual({
      published: 0,
      delivered: 0,
      errors: { NOPERM: 3 },
      ping: 'PONG',
    });
    const info = await watcher.info();
    expect(info.pubsub.refused.byCode).toMatchObject({ NOPERM: 3 });
    expect(sys.items()).toEqual([]);

    // A graceful stop is announced on $sys^shutdown, to `$sys^>` and to no wildcard.
    server.child.kill('SIGTERM');
    const shutdown = await sys.line((l) => 'item' in l);
    expect(shutdown.item).toMatchObject({
      type: 'message',
      channel: '$sys^shutdown',
      pattern: '$sys^>',
      from: '$server',
      message: { graceMs: expect.any(Number) },
    });
    expect((await server.exited).code).toBe(0);
    const seen: Item[] = [];
    // This client does not reconnect, so its subscription ends with the reason.
    await expect(
      (async () => {
        for await (const item of wild) seen.push(item as Item);
      })(),
    ).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    expect(seen.filter((i) => String(i.channel).startsWith('$'))).toEqual([]);
    expect(seen.length).toBeGreaterThan(0);
  });

  it('an observer process sees every change kind', async () => {
    const server = await serve();
    const observer = spawnAgent(['observe', server.port, 'users^>']);
    const other = spawnAgent(['observe', server.port, 'posts^>']);
    await Promise.all([observer.line((l) => l.ready === true), other.line((l) => l.ready === true)]);
    const w = await client(server.port);
    await w.set('users^1^name', 'ada');
    await w.incr('users^1^visits', 2);
    await w.cas('users^1^name', 'ada', 'grace');
    await w.del('users^1^name');
    await w.set('users^2', 0, { ttl: 1 });
    await waitFor(async () => !(await w.exists('users^2')));
    await w.drop('users');
    await w.set('users^$end', true);
    expect((await observer.exited).code).toBe(0);
    expect(observer.items().map(({ seq, ...c }) => c)).toEqual([
      { type: 'change', key: 'users^1^name', op: 'set', value: 'ada' },
      { type: 'change', key: 'users^1^visits', op: 'incr', value: 2 },
      { type: 'change', key: 'users^1^name', op: 'cas', value: 'grace' },
      { type: 'change', key: 'users^1^name', op: 'del' },
      { type: 'change', key: 'users^2', op: 'set', value: 0 },
      { type: 'change', key: 'users^2', op: 'expire' },
      { type: 'change', key: 'users', op: 'drop' },
      { type: 'change', key: 'users^$end', op: 'set', value: true },
    ]);
    await w.set('posts^$end', 1);
    expect((await other.exited).code).toBe(0);
    expect(other.items()).toMatchObject([{ key: 'posts^$end', op: 'set' }]);
  });
});

describe('slow subscriber processes', () => {
  it('drop policy: a process that never reads gets a gap; a healthy one gets everything; the publisher is not held up', async () => {
    const server = await serve(['--subscriber-buffer', '65536']);
    const slow = spawnAgent(['slow', server.port, 'feed']);
    const healthy = spawnAgent(['subscribe', server.port, 'feed']);
    await Promise.all([slow.line((l) => l.ready === true), healthy.line((l) => l.ready === true)]);

    const pub = spawnAgent(['flood', server.port, 'feed', 'dropped']);
    const report = (await pub.line((l) => 'published' in l)) as { published: number; errors: object };
    // Every publish was answered, none refused: the stuck subscriber did not hold the publisher.
    expect(report.errors).toEqual({});
    const n = report.published;
    expect(n).toBeGreaterThan(0);
    expect((await pub.exited).code).toBe(0);
    const db = await client(server.port);
    const dropped = (await db.info()).pubsub.dropped;
    expect(dropped).toBeGreaterThan(0);
    // Its healthy peer got everything, in order.
    await db.publish('feed', '$end');
    expect((await healthy.exited).code).toBe(0);
    expect(indices(healthy.items())).toEqual(range(n));

    // It reads again. "$end" may be dropped too while its backlog drains, so it is published
    // until it gets through (each one dropped is accounted for like any other push).
    slow.child.stdin!.write('go\n');
    const through = () => slow.items().some((i) => i.message === '$end');
    await waitFor(
      async () => {
        if (!through()) await db.publish('feed', '$end');
        return through();
      },
      { timeoutMs: 30_000, intervalMs: 100, message: 'the slow subscriber to catch up' },
    );
    expect((await slow.exited).code).toBe(0);
    // Every push is accounted for: a gap says how many seq numbers the next push skips.
    const items = slow.items();
    let seq = 0;
    let lost = 0;
    let pending = 0;
    for (const item of items) {
      if (item.type === 'gap') {
        pending += item.dropped!;
        lost += item.dropped!;
      } else {
        expect(item.seq).toBe(seq + 1 + pending);
        seq = item.seq;
        pending = 0;
      }
    }
    expect(lost).toBeGreaterThanOrEqual(dropped);
    expect(lost).toBe((await db.info()).pubsub.dropped);
    // What it got before the first gap is the flood's beginning, in order.
    const firstGap = items.findIndex((i) => i.type === 'gap');
    expect(firstGap).toBeGreaterThan(0);
    expect(indices(items.slice(0, firstGap))).toEqual(range(firstGap));
  });

  it('disconnect policy: the stuck process is disconnected; the healthy one gets everything', async () => {
    const server = await serve(['--subscriber-buffer', '65536', '--slow-subscriber', 'disconnect']);
    const slow = spawnAgent(['slow', server.port, 'feed']);
    const healthy = spawnAgent(['subscribe', server.port, 'feed']);
    await Promise.all([slow.line((l) => l.ready === true), healthy.line((l) => l.ready === true)]);

    const pub = spawnAgent(['flood', server.port, 'feed', 'slowDisconnected']);
    const report = (await pub.line((l) => 'published' in l)) as { published: number; errors: object };
    expect(report.errors).toEqual({});
    const db = await client(server.port);
    await db.publish('feed', '$end');
    expect((await healthy.exited).code).toBe(0);
    expect(indices(healthy.items())).toEqual(range(report.published));

    const info = (await db.info()).pubsub;
    expect(info).toMatchObject({ slowDisconnected: 1 });
    await server.waitForLog((l) => /slow subscriber disconnected/.test(l.msg));
    slow.child.stdin!.write('go\n');
    expect((await slow.exited).code).toBe(0);
    // It finds its connection closed; its subscription ends with the client (no retries here).
    expect(slow.lines).toContainEqual({ closed: true });
    expect(slow.lines).toContainEqual({ error: 'CONNECTION_CLOSED' });
  });
});

describe('limits and cleanup', () => {
  it('the publish rate limit refuses with RATE_LIMITED and the connection lives', async () => {
    const server = await serve(['--max-publish-rate', '5']);
    const pub = spawnAgent(['publish', server.port, 'a', 50]);
    const report = (await pub.line((l) => 'published' in l)) as {
      published: number;
      errors: Record<string, number>;
      ping: string;
    };
    expect(report.errors.RATE_LIMITED).toBeGreaterThan(0);
    expect(report.published + report.errors.RATE_LIMITED!).toBe(50);
    expect(report.ping).toBe('PONG');
    const info = (await (await client(server.port)).info()).pubsub;
    expect(info.refused.byCode.RATE_LIMITED).toBe(report.errors.RATE_LIMITED);
  });

  it('1000 subscribers in processes that vanish leave no trace', async () => {
    const server = await serve();
    const watcher = await client(server.port);
    await watcher.subscribe('news^>').ready;
    const before = (await watcher.info()).pubsub;
    const group = Array.from({ length: 4 }, () => spawnAgent(['vanish', server.port, 250]));
    await Promise.all(group.map((a) => a.line((l) => l.ready === 250, 60_000)));
    const during = (await watcher.info()).pubsub;
    expect(during.subscribers).toBe(before.subscribers + 1000);
    expect(during.subscriptions).toBe(before.subscriptions + 3000);
    expect(during.observations).toBe(before.observations + 1000);

    for (const a of group) a.child.kill('SIGKILL');
    await Promise.all(group.map((a) => a.exited));
    await waitFor(async () => (await watcher.info()).pubsub.subscribers === before.subscribers, {
      timeoutMs: 30_000,
      message: 'the vanished subscribers to go',
    });
    const after = (await watcher.info()).pubsub;
    expect(after).toEqual(before);
  });

  it('an in-process subscription whose owner is garbage-collected goes (node --expose-gc)', async () => {
    const child = spawn(process.execPath, ['--expose-gc', WEAK_OWNER], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => {
      stdout += t;
    });
    child.stderr.setEncoding('utf8').on('data', (t: string) => {
      stderr += t;
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({
      before: 2,
      after: 1,
      deliveredBefore: 2,
      deliveredAfter: 1,
      calls: { dropped: 1, kept: 2 },
    });
  });
});
