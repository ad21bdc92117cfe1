/**
 * Fault injection against a spawned `caretkv serve` (process-level facts: RSS, open fds, signals,
 * exit codes): slow readers, half lines that stall, connection floods past the limit, connection
 * churn, a client SIGKILLed mid-pipeline, and SIGTERM under full load.
 *
 * No timed assertions: memory and fd bounds, exact counts, and round trips that must complete.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runChurn } from '../scripts/fuzz.js';
import { info, LineClient } from '../scripts/harness.js';
import { rssBytes, type SpawnedServer, spawnServer } from './helpers/cli.js';
import { waitFor, waitForStall } from './helpers/net.js';

const MiB = 1024 * 1024;
/** CI runs this many churn cycles; the full 100k run is `npm run fuzz -- --frames 0 --churn 100000`. */
const CHURN_CYCLES = Number(process.env.CHURN_CYCLES ?? 10_000);

let server: SpawnedServer | undefined;
const clients: LineClient[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of sockets.splice(0)) s.destroy();
  await server?.kill();
  server = undefined;
});

async function serve(...args: string[]): Promise<SpawnedServer> {
  server = await spawnServer(['serve', '--log-level', 'info', ...args]);
  return server;
}

async function client(port: number): Promise<LineClient> {
  const c = await LineClient.open(port);
  clients.push(c);
  return c;
}

const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** The server's fd count once it has stopped changing (connections close asynchronously). */
async function settledFds(pid: number): Promise<number> {
  await waitForStall(() => fdCount(pid), { quietMs: 300 });
  return fdCount(pid);
}

/** Error-level lines the server logged (handler faults, INTERNAL): there must be none. */
const serverErrors = (s: SpawnedServer) => s.logs.filter((r) => r.level >= 50);

/** Ask INFO on a fresh connection (a long-lived one might itself be idle-timed-out) and close it. */
async function freshInfo(port: number) {
  const c = await LineClient.open(port);
  try {
    return await info(c);
  } finally {
    c.close();
  }
}

describe('fault injection', () => {
  it('slow readers: RSS stays bounded while a healthy client completes its round trips', async () => {
    const s = await serve();
    const healthy = await client(s.port);
    const big = 'x'.repeat(64 * 1024);
    expect((await healthy.request({ action: 'SET', key: 'big', value: big })).ok).toBe(true);
    const baseline = rssBytes(s.pid);

    // Each GET line is ~30 bytes and earns a 64 KiB answer: 8 readers x 16 MiB of GETs would be
    // ~280 GiB of output if the server buffered it. They never read. (Loopback socket buffers
    // absorb several MiB per connection, hence 16 MiB: the writers must visibly stall.)
    const request = Buffer.from('{"action":"GET","key":"big"}\n'.repeat(580_000));
    for (let i = 0; i < 8; i++) {
      const socket = net.connect({ port: s.port, host: '127.0.0.1' });
      socket.on('error', () => {});
      socket.pause();
      sockets.push(socket);
      socket.write(request);
    }
    const accepted = () => sockets.reduce((n, so) => n + (so.bytesWritten - so.writableLength), 0);
    await waitForStall(accepted, { quietMs: 500, timeoutMs: 30_000 });
    expect(accepted()).toBeLessThan(request.length * 8);

    for (let i = 0; i < 1000; i++) {
      const res = await healthy.request({ action: 'INCR', key: 'healthy', id: i });
      expect(res).toEqual({ id: i, ok: true, result: i + 1 });
    }
    expect((await healthy.request({ action: 'GET', key: 'big' })).result).toBe(big);
    expect(rssBytes(s.pid)).toBeLessThan(baseline + 64 * MiB);
    expect(serverErrors(s)).toEqual([]);
  });

  it('half a line, then silence: the idle timeout frees the connections and the half line never runs', async () => {
    const s = await serve('--idle-timeout', '0.5');
    const stalled: net.Socket[] = [];
    const closed: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      const socket = net.connect({ port: s.port, host: '127.0.0.1' });
      socket.on('error', () => {});
      sockets.push(socket);
      stalled.push(socket);
      closed.push(new Promise((resolve) => socket.once('close', () => resolve())));
      socket.write(`{"action":"SET","key":"half${i}","value":`);
    }
    await waitFor(async () => (await freshInfo(s.port)).connections.total >= 51, { message: '50 accepted' });
    await Promise.all(closed);
    await waitFor(async () => (await freshInfo(s.port)).connections.current === 1, {
      message: 'INFO connections.current back to 1',
    });
    const c = await client(s.port);
    const res = await c.request<number>({ action: 'COUNT' });
    expect(res.result).toBe(0);
    expect(serverErrors(s)).toEqual([]);
  });

  it('a flood past the connection limit is refused with the one line; the server keeps serving and leaks no fd', async () => {
    const s = await serve('--max-connections', '50');
    const fdsBefore = await settledFds(s.pid);
    const admitted: LineClient[] = [];
    for (let i = 0; i < 50; i++) admitted.push(await client(s.port));
    for (const c of admitted) expect((await c.request({ action: 'PING' })).result).toBe('PONG');

    const refused = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const c = await LineClient.open(s.port);
        clients.push(c);
        return (await c.rest()).join('\n');
      }),
    );
    const line = JSON.stringify({
      ok: false,
      error: {
        code: 'TOO_MANY_CONNECTIONS',
        message:
          'The server is at its connection limit and closed this connection. Retry later, or raise --max-connections.',
      },
    });
    expect(new Set(refused)).toEqual(new Set([line]));

    for (const c of admitted) expect((await c.request({ action: 'PING' })).result).toBe('PONG');
    const stats = await info(admitted[0]!);
    expect(stats.connections).toMatchObject({ current: 50, rejected: 200 });

    for (const c of clients.splice(0)) c.close();
    await waitFor(() => fdCount(s.pid) <= fdsBefore, { message: `fds back to ${fdsBefore}` });
    expect((await freshInfo(s.port)).connections.current).toBe(1);
    expect(serverErrors(s)).toEqual([]);
  });

  it(`connection churn: ${CHURN_CYCLES} connect/disconnect cycles leave no fd, connection or memory behind`, async () => {
    const s = await serve();
    const warm = await runChurn(s.port, 1000, { seed: 7 });
    expect(warm.failures).toEqual([]);
    await waitFor(async () => (await freshInfo(s.port)).connections.current === 1);
    const fdsBefore = await settledFds(s.pid);
    const rssBefore = rssBytes(s.pid);
    const before = await freshInfo(s.port);

    const churn = await runChurn(s.port, CHURN_CYCLES, { concurrency: 32, seed: 8 });
    expect(churn.failures).toEqual([]);
    expect(churn.cycles).toBe(CHURN_CYCLES);

    await waitFor(async () => (await freshInfo(s.port)).connections.current === 1, { timeoutMs: 20_000 });
    await waitFor(() => fdCount(s.pid) <= fdsBefore, { message: `fds back to ${fdsBefore}` });
    const after = await freshInfo(s.port);
    // The INFO calls themselves: one connection each, the `before` one included.
    expect(after.connections.total - before.connections.total).toBeGreaterThanOrEqual(CHURN_CYCLES + 1);
    expect(after.connections.total - before.connections.total).toBeLessThan(CHURN_CYCLES + 100);
    expect(after.commands.byAction.PING! - before.commands.byAction.PING!).toBe(churn.pings);
    expect(rssBytes(s.pid)).toBeLessThan(rssBefore + 64 * MiB);
    expect(serverErrors(s)).toEqual([]);
  }, 120_000);

  it('a client SIGKILLed mid-pipeline: what ran is an exact prefix of what it sent, and the server carries on', async () => {
    const s = await serve();
    // Pipelines SET kill^<i> = i as fast as the socket takes them; says `ready` once well under way.
    const script = `
      const net = require('node:net');
      const socket = net.connect(${s.port}, '127.0.0.1', () => {
        let i = 0;
        const pump = () => {
          let ok = true;
          while (ok) {
            let batch = '';
            for (let j = 0; j < 100; j++, i++) batch += '{"action":"SET","key":"kill^' + i + '","value":' + i + '}\\n';
            ok = socket.write(batch);
            if (i === 20000) process.stdout.write('ready\\n');
          }
          socket.once('drain', pump);
        };
        pump();
      });
      socket.resume();`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_c, sig) => resolve(sig)),
    );
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        child.once('exit', () => reject(new Error('the pipelining child exited early')));
      });
      const c = await client(s.port);
      await waitFor(
        async () => ((await c.request<number>({ action: 'COUNT', namespace: 'kill' })).result ?? 0) > 1000,
      );
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');

      await waitFor(async () => (await info(c)).connections.current === 1, {
        message: 'the killed client released',
      });
      const n = (await c.request<number>({ action: 'COUNT', namespace: 'kill' })).result!;
      expect(n).toBeGreaterThan(1000);
      for (let from = 0; from < n; from += 10_000) {
        const keys = Array.from({ length: Math.min(10_000, n - from) }, (_, k) => `kill^${from + k}`);
        const values = (await c.request<Record<string, number>>({ action: 'MGET', keys })).result!;
        for (let k = 0; k < keys.length; k++) expect(values[keys[k]!]).toBe(from + k);
      }
      expect((await c.request({ action: 'PING' })).result).toBe('PONG');
      expect((await info(c)).errors.byCode.INTERNAL).toBeUndefined();
      expect(serverErrors(s)).toEqual([]);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  });

  it('SIGTERM under full load: every acknowledged write is visible to later GETs, every connection gets the shutdown push, exit 0', async () => {
    const s = await serve();
    const WRITERS = 8;
    const WINDOW = 256;
    const acked = new Array<number>(WRITERS).fill(-1);
    const problems: string[] = [];

    /** Pipelines SET sig^w = i (id i) with WINDOW requests in flight; checks order; stops at EOF. */
    const writer = async (w: number) => {
      const c = await client(s.port);
      let sent = 0;
      let seen = 0;
      let pushed = false;
      const refill = () => {
        if (c.ended || pushed) return;
        const batch: object[] = [];
        while (sent - seen < WINDOW) batch.push({ action: 'SET', key: `sig^${w}`, value: sent, id: sent++ });
        if (batch.length > 0) c.send(...batch);
      };
      refill();
      for (;;) {
        let lines: string[];
        try {
          lines = await c.take(1, 30_000);
        } catch {
          break; // EOF
        }
        const r = JSON.parse(lines[0]!) as { id?: number; ok?: boolean; event?: string };
        if (r.event !== undefined) {
          if (r.event !== 'shutdown') problems.push(`writer ${w}: unexpected push ${lines[0]}`);
          pushed = true;
          continue;
        }
        if (pushed) problems.push(`writer ${w}: a response after the shutdown push`);
        if (r.id !== seen || r.ok !== true)
          problems.push(`writer ${w}: expected ok for id ${seen}, got ${lines[0]}`);
        acked[w] = seen++;
        refill();
      }
      if (!pushed) problems.push(`writer ${w}: no shutdown push before EOF`);
      return seen;
    };

    /** Pipelines GETs round-robin; an answer must hold at least what was acknowledged when it was asked. */
    const checker = async () => {
      const c = await client(s.port);
      const floors: number[] = [];
      let asked = 0;
      let answered = 0;
      let pushed = false;
      const refill = () => {
        if (c.ended || pushed) return;
        const batch: object[] = [];
        while (asked - answered < 64) {
          const w = asked % WRITERS;
          floors.push(acked[w]!);
          batch.push({ action: 'GET', key: `sig^${w}`, id: asked++ });
        }
        c.send(...batch);
      };
      refill();
      for (;;) {
        let lines: string[];
        try {
          lines = await c.take(1, 30_000);
        } catch {
          break;
        }
        const r = JSON.parse(lines[0]!) as { id?: number; ok?: boolean; result?: number; event?: string };
        if (r.event === 'shutdown') {
          pushed = true;
          continue;
        }
        const floor = floors[answered]!;
        if (r.id !== answered) problems.push(`checker: out of order ${lines[0]}`);
        else if (r.ok ? r.result! < floor : floor !== -1) {
          problems.push(
            `checker: GET sig^${answered % WRITERS} answered ${lines[0]} after write ${floor} was acknowledged`,
          );
        }
        answered++;
        refill();
      }
      if (!pushed) problems.push('checker: no shutdown push before EOF');
      return answered;
    };

    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    const checked = checker();
    await waitFor(() => acked.every((a) => a >= 2000), { timeoutMs: 30_000, message: 'load under way' });
    s.child.kill('SIGTERM');
    const written = await Promise.all(writers);
    const answered = await checked;
    const exit = await s.exited;

    expect(problems).toEqual([]);
    expect(exit).toEqual({ code: 0, signal: null });
    for (const n of written) expect(n).toBeGreaterThan(2000);
    expect(answered).toBeGreaterThan(0);
    expect(s.logs.some((r) => r.msg === 'shutdown complete')).toBe(true);
    expect(serverErrors(s)).toEqual([]);
  });
});
