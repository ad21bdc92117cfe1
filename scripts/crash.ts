/**
 * Crash test: a real `caretkv serve --data-dir` under write load is SIGKILLed again and again;
 * after each restart, every write it acknowledged must be there.
 *
 *   npm run crash -- --kills 100 --appendfsync always      (builds, then runs this file)
 *   npm run crash -- --kills 100 --appendfsync everysec
 *
 * - always: no acknowledged write may be missing, ever.
 * - everysec: an acknowledged write may be missing only if it was acknowledged within the last
 *   `--window-ms` (default 2000) before the kill: the policy's promise. (SIGKILL kills the process,
 *   not the machine: what was written reaches the disk anyway, so in practice only the batch not
 *   yet handed to write() can go; a power cut can also lose up to a second of written data.)
 * Each round: W writers pipeline SETs of distinct keys (`r<round>^w<writer>^<n>` = n) and each
 * also overwrites its `last^w<writer>` with increasing numbers; the kill comes after a random
 * 50-400 ms of load. The next round first reads every key the previous round acknowledged (MGET)
 * and checks each `last^` value is at least the last acknowledged one.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Rng, randomSeed } from './harness.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

export interface CrashOptions {
  kills: number;
  appendfsync: 'always' | 'everysec' | 'no';
  writers?: number;
  windowMs?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface CrashReport {
  appendfsync: string;
  seed: number;
  kills: number;
  acked: number;
  /** Acknowledged writes not found after the restart. */
  lost: number;
  /** ... of which acknowledged longer than windowMs before the kill (a broken promise). */
  lostOutsideWindow: number;
  /** `last^` keys found below their last acknowledged value. */
  wentBack: number;
  restartMs: number[];
  ok: boolean;
}

interface Server {
  child: ChildProcess;
  port: number;
  exited: Promise<void>;
}

function startServer(dir: string, appendfsync: string): Promise<Server> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--port',
      '0',
      '--data-dir',
      dir,
      '--appendfsync',
      appendfsync,
      '--log-level',
      'info',
      '--log-format',
      'json',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
    child.stdout!.setEncoding('utf8').on('data', (t: string) => {
      out += t;
      const m = /"msg":"listening".*?"port":(\d+)|"port":(\d+).*?"msg":"listening"/.exec(out);
      if (m !== null) resolve({ child, port: Number(m[1] ?? m[2]), exited });
    });
    void exited.then(() => reject(new Error(`server exited before listening: ${err || out}`)));
  });
}

/** A raw NDJSON connection that pipelines up to `window` requests and records which were answered ok. */
class Writer {
  private socket: net.Socket;
  private buffer = '';
  private inFlight = 0;
  private next = 0;
  private stopped = false;
  /** key -> [value, ackedAt]: acknowledged writes. */
  readonly acked = new Map<string, [number, number]>();
  lastAcked = -1;
  lastAckedAt = 0;
  private readonly sent = new Map<number, [string, number]>();

  constructor(
    port: number,
    private readonly prefix: string,
    private readonly lastKey: string,
    private readonly base: number,
    private readonly window = 16,
  ) {
    this.socket = net.connect({ port, host: '127.0.0.1' });
    this.socket.setEncoding('utf8');
    this.socket.on('error', () => {});
    this.socket.on('connect', () => this.fill());
    this.socket.on('data', (text: string) => this.onData(text));
    this.socket.on('close', () => {
      this.stopped = true;
    });
  }

  private fill(): void {
    let out = '';
    while (!this.stopped && this.inFlight < this.window) {
      const n = this.next++;
      // Even ids: a fresh key; odd ids: the writer's `last` key, always increasing.
      const key = n % 2 === 0 ? `${this.prefix}^${n}` : this.lastKey;
      const value = this.base + n;
      this.sent.set(n, [key, value]);
      out += `{"id":${n},"action":"SET","key":${JSON.stringify(key)},"value":${value}}\n`;
      this.inFlight++;
    }
    if (out !== '') this.socket.write(out);
  }

  private onData(text: string): void {
    this.buffer += text;
    let i = this.buffer.indexOf('\n');
    while (i !== -1) {
      const line = JSON.parse(this.buffer.slice(0, i)) as { id?: number; ok?: boolean };
      this.buffer = this.buffer.slice(i + 1);
      i = this.buffer.indexOf('\n');
      if (typeof line.id !== 'number') continue;
      this.inFlight--;
      const sent = this.sent.get(line.id);
      this.sent.delete(line.id);
      if (line.ok !== true || sent === undefined) continue;
      const now = Date.now();
      if (sent[0] === this.lastKey) {
        if (sent[1] > this.lastAcked) {
          this.lastAcked = sent[1];
          this.lastAckedAt = now;
        }
      } else {
        this.acked.set(sent[0], [sent[1], now]);
      }
    }
    this.fill();
  }

  stop(): void {
    this.stopped = true;
    this.socket.destroy();
  }
}

/** GETs many keys over one connection (MGET in chunks); resolves key -> value (missing: absent). */
async function readBack(port: number, keys: string[]): Promise<Map<string, unknown>> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.setEncoding('utf8');
  const found = new Map<string, unknown>();
  const chunks: string[][] = [];
  for (let i = 0; i < keys.length; i += 1000) chunks.push(keys.slice(i, i + 1000));
  await new Promise<void>((resolve, reject) => {
    let buffer = '';
    let answered = 0;
    socket.on('error', reject);
    socket.on('data', (text: string) => {
      buffer += text;
      let i = buffer.indexOf('\n');
      while (i !== -1) {
        const line = JSON.parse(buffer.slice(0, i)) as {
          id: number;
          ok: boolean;
          result: Record<string, unknown>;
        };
        buffer = buffer.slice(i + 1);
        i = buffer.indexOf('\n');
        if (!line.ok) return reject(new Error(`MGET failed: ${JSON.stringify(line)}`));
        for (const [k, v] of Object.entries(line.result)) if (v !== null) found.set(k, v);
        if (++answered === chunks.length) resolve();
      }
    });
    if (chunks.length === 0) resolve();
    for (let c = 0; c < chunks.length; c++) {
      socket.write(`${JSON.stringify({ id: c, action: 'MGET', keys: chunks[c] })}\n`);
    }
  });
  socket.destroy();
  return found;
}

export async function runCrashTest(options: CrashOptions): Promise<CrashReport> {
  const seed = options.seed ?? randomSeed();
  const rng = new Rng(seed);
  const writersCount = options.writers ?? 4;
  const windowMs = options.windowMs ?? 2000;
  const log = options.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'caretkv-crash-'));
  const report: CrashReport = {
    appendfsync: options.appendfsync,
    seed,
    kills: 0,
    acked: 0,
    lost: 0,
    lostOutsideWindow: 0,
    wentBack: 0,
    restartMs: [],
    ok: true,
  };
  let previous: { writers: Writer[]; killAt: number } | null = null;
  try {
    for (let round = 0; round <= options.kills; round++) {
      const started = Date.now();
      const server = await startServer(dir, options.appendfsync);
      report.restartMs.push(Date.now() - started);
      try {
        if (previous !== null) {
          const { writers, killAt } = previous;
          const keys = writers.flatMap((w) => [...w.acked.keys()]);
          const lastKeys = writers.map((_, i) => `last^w${i}`);
          const found = await readBack(server.port, [...keys, ...lastKeys]);
          for (const w of writers) {
            for (const [key, [value, at]] of w.acked) {
              report.acked++;
              if (found.get(key) === value) continue;
              report.lost++;
              if (at < killAt - windowMs) report.lostOutsideWindow++;
            }
          }
          writers.forEach((w, i) => {
            const value = found.get(`last^w${i}`);
            const outsideWindow = w.lastAckedAt < killAt - windowMs;
            if (w.lastAcked >= 0 && !(typeof value === 'number' && value >= w.lastAcked)) {
              if (options.appendfsync === 'always' || outsideWindow) report.wentBack++;
            }
          });
        }
        if (round === options.kills) break;
        // Values grow across rounds, so `last^` checks hold from round to round.
        const base = round * 10_000_000;
        const writers = Array.from(
          { length: writersCount },
          (_, i) => new Writer(server.port, `r${round}^w${i}`, `last^w${i}`, base),
        );
        await new Promise((r) => setTimeout(r, rng.int(50, 400)));
        const killAt = Date.now();
        server.child.kill('SIGKILL');
        await server.exited;
        for (const w of writers) w.stop();
        report.kills++;
        previous = { writers, killAt };
        log(
          `kill ${report.kills}/${options.kills} (${options.appendfsync}): ${writers.reduce((n, w) => n + w.acked.size, 0)} writes acknowledged`,
        );
      } finally {
        if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
        await server.exited;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report.ok =
    report.wentBack === 0 &&
    (options.appendfsync === 'always' ? report.lost === 0 : report.lostOutsideWindow === 0);
  return report;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kills: { type: 'string', default: '100' },
      appendfsync: { type: 'string', default: 'always' },
      writers: { type: 'string', default: '4' },
      'window-ms': { type: 'string', default: '2000' },
      seed: { type: 'string' },
    },
  });
  const appendfsync = values.appendfsync as CrashOptions['appendfsync'];
  if (!['always', 'everysec', 'no'].includes(appendfsync))
    throw new Error('--appendfsync: always, everysec or no');
  const report = await runCrashTest({
    kills: Number(values.kills),
    appendfsync,
    writers: Number(values.writers),
    windowMs: Number(values['window-ms']),
    ...(values.seed !== undefined && { seed: Number(values.seed) }),
    log: (line) => console.log(line),
  });
  const { restartMs, ...summary } = report;
  const sorted = [...restartMs].sort((a, b) => a - b);
  console.log(
    JSON.stringify(
      { ...summary, restartMsMedian: sorted[sorted.length >> 1], restartMsMax: sorted[sorted.length - 1] },
      null,
      2,
    ),
  );
  console.log(report.ok ? 'crash: PASS' : `crash: FAIL (seed ${report.seed})`);
  process.exitCode = report.ok ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
