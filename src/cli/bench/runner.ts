import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { decodeFromCompressedBase64 } from 'hdr-histogram-js';
import { BenchError, LoadGenerator, type LoadResult, type LoadShare, newHistogram } from './load.js';
import type { BenchOptions } from './options.js';
import { type BenchReport, buildReport } from './report.js';
import type { FromWorker, ToWorker } from './worker.js';
import { buildRing, type Ring } from './workload.js';

export interface RunHooks {
  /** Called about once a second with the measured requests so far (not during warm-up). */
  onProgress?: (progress: { elapsedSeconds: number; requests: number }) => void;
  /** Aborting stops sending; the run reports what it measured once in-flight replies are in. */
  signal?: AbortSignal;
}

/** How one thread's share is driven: in this thread, or in a worker thread. */
interface Unit {
  connect(): Promise<void>;
  run(): Promise<LoadResult>;
  measured(): number;
  stop(): void;
  close(): void;
}

class LocalUnit implements Unit {
  readonly #generator: LoadGenerator;
  constructor(share: LoadShare) {
    this.#generator = new LoadGenerator(share);
  }
  connect(): Promise<void> {
    return this.#generator.connect();
  }
  run(): Promise<LoadResult> {
    return this.#generator.run();
  }
  measured(): number {
    return this.#generator.measured;
  }
  stop(): void {
    this.#generator.stop();
  }
  close(): void {
    this.#generator.close();
  }
}

// From source (tsx, vitest): worker.ts beside this file, whose loader the worker inherits through
// execArgv. From the bundled CLI this code sits in dist/chunks/ and the worker is bundled to
// dist/cli/bench/worker.js (scripts/bundle.ts).
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './worker.ts' : '../cli/bench/worker.js',
  import.meta.url,
);

class WorkerUnit implements Unit {
  readonly #worker: Worker;
  #measured = 0;
  #ready: { resolve: () => void; reject: (err: Error) => void } | null = null;
  #result: { resolve: (r: LoadResult) => void; reject: (err: Error) => void } | null = null;
  #failure: Error | null = null;
  #exited = false;

  constructor(share: LoadShare) {
    this.#worker = new Worker(WORKER_URL, { workerData: share });
    this.#worker.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'ready':
          this.#ready?.resolve();
          break;
        case 'progress':
          this.#measured = message.measured;
          break;
        case 'result':
          this.#measured = message.result.requests;
          this.#result?.resolve(message.result);
          this.#result = null;
          break;
        case 'error':
          this.#fail(new BenchError(message.message));
          break;
      }
    });
    this.#worker.on('error', (err) => this.#fail(new BenchError(`load worker crashed: ${err.message}`)));
    this.#worker.on('exit', (code) => {
      this.#exited = true;
      this.#fail(new BenchError(`load worker exited (code ${code}) before reporting`));
    });
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#ready?.reject(this.#failure);
    this.#result?.reject(this.#failure);
    this.#ready = null;
    this.#result = null;
  }

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#failure) reject(this.#failure);
      else this.#ready = { resolve, reject };
    });
  }

  run(): Promise<LoadResult> {
    return new Promise((resolve, reject) => {
      if (this.#failure) {
        reject(this.#failure);
        return;
      }
      this.#result = { resolve, reject };
      this.#post({ type: 'go' });
    });
  }

  measured(): number {
    this.#post({ type: 'progress' });
    return this.#measured;
  }

  stop(): void {
    this.#post({ type: 'stop' });
  }

  close(): void {
    if (!this.#exited) void this.#worker.terminate();
  }

  #post(message: ToWorker): void {
    if (!this.#exited) this.#worker.postMessage(message);
  }
}

/**
 * Threads when `--threads auto`. Measured on 2 cores (shared with the server) against
 * redis-server, 50 connections: one thread drove ~60k ops/s at pipeline 1 with ~50% of a core
 * (mostly syscalls) and ~350k ops/s at pipeline 16 with ~30%; a second thread did not raise
 * throughput (it competes with the server for the same two cores). So one thread below 4 cores;
 * above, threads pay off only with cores to spare beside the server.
 */
export function autoThreads(options: Pick<BenchOptions, 'conns' | 'pipeline'>, cores: number): number {
  if (cores < 4 || options.conns < 2) return 1;
  return Math.min(Math.floor(cores / 2), options.conns, options.conns * options.pipeline >= 256 ? 4 : 2);
}

/** Split `total` into `parts` near-equal integers (the first ones get the remainder). */
export function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/** Keys per prefill pass: bounds the pass's ring (~70 MB at 32-byte values). */
const PREFILL_CHUNK = 1_000_000;

/**
 * `--prefill`: SET every key of the keyspace exactly once, in order, before the measured run, so
 * that GETs hit (caretkv answers a miss with KEY_NOT_FOUND, a different path from Redis's nil).
 * Each connection takes a contiguous run of keys; the pass is not measured but must not fail.
 */
async function prefill(options: BenchOptions): Promise<void> {
  for (let from = 0; from < options.keyspace; from += PREFILL_CHUNK) {
    const count = Math.min(PREFILL_CHUNK, options.keyspace - from);
    const conns = Math.min(options.conns, count);
    const quotas = split(count, conns);
    let next = 0;
    const cursors = quotas.map((quota) => {
      next += quota;
      return next - quota;
    });
    const ring = buildRing({
      target: options.target,
      mix: { SET: 1, GET: 0, INCR: 0, PING: 0 },
      keyspace: options.keyspace,
      valueSize: options.valueSize,
      minSlots: 1,
      sequential: { from, count },
    });
    const generator = new LoadGenerator({
      target: options.target,
      host: options.host,
      port: options.port,
      pipeline: Math.min(Math.max(options.pipeline, 16), count),
      firstConn: 0,
      conns,
      totalConns: conns,
      quotas,
      cursors,
      warmupMs: 0,
      durationMs: null,
      timeoutMs: options.timeoutSeconds * 1000,
      ring,
    });
    await generator.connect();
    const result = await generator.run();
    const failed = Object.entries(result.errors);
    if (failed.length > 0) {
      const codes = failed.map(([code, n]) => `${code} ${n}`).join(', ');
      throw new BenchError(`--prefill: SETs failed (${codes}); the server refused the key pattern or values`);
    }
  }
}

/** Run one benchmark: build the requests, connect every connection, drive the load, merge the results. */
export async function runBench(options: BenchOptions, hooks: RunHooks = {}): Promise<BenchReport> {
  if (options.prefill) await prefill(options);
  const cores = availableParallelism();
  const conns = options.requests === null ? options.conns : Math.min(options.conns, options.requests);
  const wanted = options.threads === 'auto' ? autoThreads(options, cores) : options.threads;
  const threads = Math.max(1, Math.min(wanted, conns));

  const ring: Ring = buildRing({
    target: options.target,
    mix: options.mix,
    keyspace: options.keyspace,
    valueSize: options.valueSize,
    minSlots: options.pipeline * 2,
  });
  const connQuotas = options.requests === null ? null : split(options.requests, conns);
  const perThread = split(conns, threads);
  const units: Unit[] = [];
  let first = 0;
  for (const count of perThread) {
    const share: LoadShare = {
      target: options.target,
      host: options.host,
      port: options.port,
      pipeline: options.pipeline,
      firstConn: first,
      conns: count,
      totalConns: conns,
      quotas: connQuotas ? connQuotas.slice(first, first + count) : null,
      warmupMs: options.warmupSeconds * 1000,
      durationMs: options.durationSeconds === null ? null : options.durationSeconds * 1000,
      timeoutMs: options.timeoutSeconds * 1000,
      ring,
    };
    units.push(threads === 1 ? new LocalUnit(share) : new WorkerUnit(share));
    first += count;
  }

  const timers: NodeJS.Timeout[] = [];
  const onAbort = (): void => {
    for (const unit of units) unit.stop();
  };
  try {
    await Promise.all(units.map((unit) => unit.connect()));

    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const running = Promise.all(units.map((unit) => unit.run()));
    hooks.signal?.addEventListener('abort', onAbort, { once: true });
    if (hooks.signal?.aborted) onAbort();

    if (hooks.onProgress) {
      const onProgress = hooks.onProgress;
      const measureFrom = start + options.warmupSeconds * 1000;
      timers.push(
        setInterval(() => {
          const now = performance.now();
          if (now < measureFrom) return;
          const requests = units.reduce((sum, unit) => sum + unit.measured(), 0);
          onProgress({ elapsedSeconds: (now - measureFrom) / 1000, requests });
        }, 1000),
      );
    }

    // Belt and braces over each thread's own stall watchdog: a duration run always ends.
    const safety = new Promise<never>((_, reject) => {
      if (options.durationSeconds === null) return;
      const ms = (options.warmupSeconds + options.durationSeconds + options.timeoutSeconds + 5) * 1000;
      timers.push(
        setTimeout(() => reject(new BenchError(`run did not finish within ${ms / 1000} s; aborted`)), ms),
      );
    });

    const results = await Promise.race([running, safety]);
    const wallMs = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);

    const histogram = newHistogram();
    for (const result of results) histogram.add(decodeFromCompressedBase64(result.histogram));
    return buildReport({
      options: { ...options, conns },
      threads,
      cores,
      results,
      histogram,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
    });
  } catch (err) {
    for (const unit of units) unit.close();
    throw err;
  } finally {
    hooks.signal?.removeEventListener('abort', onAbort);
    for (const timer of timers) clearTimeout(timer);
    for (const unit of units) unit.close();
  }
}
