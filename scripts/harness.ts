/**
 * Shared machinery for the reliability scripts (fuzz.ts, soak.ts) and their CI tests: a caretkv
 * server in a child process that can be measured from inside (RSS, heap after a forced GC, open
 * fds, event-loop delay from `perf_hooks.monitorEventLoopDelay`), a seeded PRNG, and a raw NDJSON
 * client.
 *
 * Why a child process: the load generator must not share the server's event loop (its own work
 * would show up as the server's loop delay) and memory figures must be the server's alone. Why not
 * `dist/cli.js`: the CLI cannot be asked to run a GC or report its loop delay, and INFO reports
 * neither; the child builds the server through the same composition root (`createServer`) and
 * otherwise behaves like `caretkv serve` (SIGTERM/SIGINT close it gracefully and exit 0).
 *
 *   parent ──fork(--import tsx --expose-gc)──> harness.ts --probe-child '<settings JSON>'
 *          <── IPC {type:'ready', port, pid}
 *          ──> {id, op:'sample'|'fill'|'close'}  <── {id, result}
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------------
// Seeded randomness: runs are reproducible from the printed seed.

/** sfc32: small, fast, good enough statistical quality for test-input generation. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)]!;
  }

  /** A derived generator, so each worker's stream does not depend on how the others interleave. */
  fork(): Rng {
    return new Rng(this.u32());
  }
}

export function randomSeed(): number {
  return (Date.now() ^ (process.pid << 16) ^ Math.floor(Math.random() * 2 ** 32)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// The measured server (child side)

/** What the child reports on each `sample`. Loop figures cover the time since the previous sample. */
export interface ServerSample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  fds: number;
  /** Event-loop delay over the window, in milliseconds (monitorEventLoopDelay, 10 ms resolution). */
  loopMaxMs: number;
  loopP99Ms: number;
  loopMeanMs: number;
  /**
   * The server's CPU use over the window, in % of one core. A loop stall with low CPU means the
   * process was starved by the machine (other processes), not blocked by its own work.
   */
  cpuPercent: number;
  connections: number;
  connectionsTotal: number;
  connectionsRejected: number;
}

export interface ProbeSettings {
  /** Config values, as flags would give them (`{ idleTimeout: 1, maxLineBytes: 65536 }`). */
  config?: Record<string, unknown>;
}

const LOOP_RESOLUTION_MS = 10;

async function runChild(settings: ProbeSettings): Promise<void> {
  const { loadConfig } = await import('../src/config.js');
  const { createServer } = await import('../src/server.js');
  const { createLogger } = await import('../src/log.js');
  const config = loadConfig({ flags: { port: 0, logLevel: 'warn', ...settings.config } });
  const logger = createLogger({ level: config.logLevel, format: 'json' });
  const server = createServer(config, { logger });
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  const gc = (globalThis as { gc?: () => void }).gc;
  let cpuMark = process.cpuUsage();
  let wallMark = performance.now();

  const sample = (forceGc: boolean): ServerSample => {
    // Loop figures first, then the GC: the collection's own pause must not count as load.
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    const loopMaxMs = ms(loop.max);
    const loopP99Ms = ms(loop.percentile(99));
    const loopMeanMs = ms(Number.isNaN(loop.mean) ? 0 : loop.mean);
    const cpu = process.cpuUsage(cpuMark);
    const wall = performance.now() - wallMark;
    const cpuPercent = wall > 0 ? Math.round(((cpu.user + cpu.system) / 1000 / wall) * 1000) / 10 : 0;
    if (forceGc && gc) {
      gc();
      gc();
    }
    const memory = process.memoryUsage();
    const stats = server.stats;
    loop.reset();
    cpuMark = process.cpuUsage();
    wallMark = performance.now();
    return {
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      heapTotal: memory.heapTotal,
      external: memory.external,
      fds: readdirSync('/proc/self/fd').length,
      loopMaxMs,
      loopP99Ms,
      loopMeanMs,
      cpuPercent,
      connections: stats.connections,
      connectionsTotal: stats.connectionsTotal,
      connectionsRejected: stats.connectionsRejected,
    };
  };

  /** Fills `namespace` with `count` keys straight into the store: setup for the big-operation probes. */
  const fill = async (namespace: string, count: number): Promise<number> => {
    const store = server.store!;
    for (let i = 0; i < count; i++) {
      await store.set(`${namespace}^k${String(i).padStart(8, '0')}`, String(i));
      // Yield now and then so IPC and the listener are not starved during a long fill.
      if (i % 50_000 === 49_999) await new Promise((resolve) => setImmediate(resolve));
    }
    return count;
  };

  let closing = false;
  const shutdown = async (): Promise<void> => {
    if (closing) process.exit(130);
    closing = true;
    await server.close();
    loop.disable();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
  // The parent is gone: do not linger as an orphan holding a port.
  process.on('disconnect', () => void shutdown());

  process.on(
    'message',
    (msg: { id: number; op: string; gc?: boolean; namespace?: string; count?: number }) => {
      const reply = (result: unknown) => process.send?.({ id: msg.id, result });
      const fail = (err: unknown) => process.send?.({ id: msg.id, error: String(err) });
      if (msg.op === 'sample') reply(sample(msg.gc ?? false));
      else if (msg.op === 'fill') fill(msg.namespace ?? 'big', msg.count ?? 0).then(reply, fail);
      else if (msg.op === 'close') void shutdown();
      else fail(new Error(`unknown op ${msg.op}`));
    },
  );

  const { port } = await server.listen();
  loop.reset();
  process.send?.({ type: 'ready', port, pid: process.pid });
}

// ---------------------------------------------------------------------------------------------
// The measured server (parent side)

export interface ProbedServer {
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Lines the server logged at warn or above (JSON log records). */
  readonly problems: Record<string, unknown>[];
  sample(options?: { gc?: boolean }): Promise<ServerSample>;
  fill(namespace: string, count: number): Promise<number>;
  /** SIGTERM (graceful) and wait for the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running. Safe to call twice. */
  kill(): Promise<void>;
}

const HARNESS_PATH = fileURLToPath(import.meta.url);

/** Start the measured server in a child process and wait until it listens. */
export async function startProbedServer(settings: ProbeSettings = {}): Promise<ProbedServer> {
  const tsx = createRequire(import.meta.url).resolve('tsx');
  const child = fork(HARNESS_PATH, ['--probe-child', JSON.stringify(settings)], {
    execArgv: ['--import', tsx.replace(/loader\.c?js$/, 'loader.mjs'), '--expose-gc'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CARETKV_'))),
  });
  const problems: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        const record = JSON.parse(line) as Record<string, unknown>;
        if (typeof record.level === 'number' && record.level >= 40) problems.push(record);
      } catch {
        problems.push({ level: 50, msg: `non-JSON output: ${line}` });
      }
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );

  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let ready: { port: number; pid: number } | undefined;
  const readyPromise = new Promise<{ port: number; pid: number }>((resolve, reject) => {
    child.on('message', (msg: { type?: string; id?: number; result?: unknown; error?: string } & object) => {
      if (msg.type === 'ready') {
        ready = msg as { port: number; pid: number };
        resolve(ready);
        return;
      }
      const waiter = pending.get(msg.id!);
      if (!waiter) return;
      pending.delete(msg.id!);
      if (msg.error) waiter.reject(new Error(msg.error));
      else waiter.resolve(msg.result);
    });
    void exited.then((exit) => {
      const err = new Error(`probe server exited (${exit.code ?? exit.signal}); stderr: ${stderr}`);
      reject(err);
      for (const waiter of pending.values()) waiter.reject(err);
      pending.clear();
    });
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  let address: { port: number; pid: number };
  try {
    address = await readyPromise;
  } finally {
    clearTimeout(timer);
  }

  const call = <T>(op: string, args: object = {}): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (!child.connected) {
        reject(new Error('probe server is gone'));
        return;
      }
      const id = nextId++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, op, ...args });
    });
  const alive = () => child.exitCode === null && child.signalCode === null;

  return {
    host: '127.0.0.1',
    port: address.port,
    pid: address.pid,
    child,
    problems,
    sample: (options = {}) => call<ServerSample>('sample', { gc: options.gc ?? false }),
    fill: (namespace, count) => call<number>('fill', { namespace, count }),
    stop: async () => {
      if (alive()) child.kill('SIGTERM');
      const hard = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const exit = await exited;
      clearTimeout(hard);
      return exit;
    },
    kill: async () => {
      if (alive()) child.kill('SIGKILL');
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A raw NDJSON client

export interface Response {
  id?: string | number;
  ok?: boolean;
  result?: unknown;
  error?: { code: string; message: string };
  event?: string;
}

/** One connection speaking raw lines; responses are read in order. */
export class LineClient {
  private buffer = '';
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  ended = false;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      let i = this.buffer.indexOf('\n');
      let start = 0;
      while (i !== -1) {
        this.lines.push(this.buffer.slice(start, i));
        start = i + 1;
        i = this.buffer.indexOf('\n', start);
      }
      this.buffer = this.buffer.slice(start);
      this.waiter?.();
    });
    const finish = () => {
      this.ended = true;
      this.waiter?.();
    };
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', () => {});
  }

  static open(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', reject);
        resolve(new LineClient(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Lines received and not yet taken. */
  get available(): number {
    return this.lines.length;
  }

  send(...requests: object[]): void {
    let text = '';
    for (const r of requests) text += `${JSON.stringify(r)}\n`;
    this.socket.write(text);
  }

  /** Wait for `n` lines (or EOF), at most `timeoutMs`; returns them. Throws when they do not come. */
  async take(n: number, timeoutMs = 20_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length < n && !this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} lines (have ${this.lines.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve();
        };
      });
    }
    if (this.lines.length < n) throw new Error(`connection ended after ${this.lines.length} of ${n} lines`);
    return this.lines.splice(0, n);
  }

  /** Every line until the server closes the connection. */
  async rest(timeoutMs = 20_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for the server to close the connection');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve();
        };
      });
    }
    return this.lines.splice(0);
  }

  /** One request, one parsed response. */
  async request<R = unknown>(req: object): Promise<Response & { result?: R }> {
    this.send(req);
    const [line] = await this.take(1);
    return JSON.parse(line!) as Response & { result?: R };
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The parts of INFO the reliability checks read. */
export interface InfoSnapshot {
  connections: { current: number; total: number; rejected: number };
  commands: { total: number; byAction: Record<string, number> };
  errors: { total: number; byCode: Record<string, number> };
  keys: number;
  namespaces: number;
  memory: { rss: number; heapUsed: number; heapTotal: number };
}

export async function info(client: LineClient): Promise<InfoSnapshot> {
  const res = await client.request<InfoSnapshot>({ action: 'INFO' });
  if (!res.ok) throw new Error(`INFO failed: ${JSON.stringify(res)}`);
  return res.result!;
}

// ---------------------------------------------------------------------------------------------
// Figures

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const mib = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;

if (process.argv[2] === '--probe-child') {
  runChild(JSON.parse(process.argv[3] ?? '{}') as ProbeSettings).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
