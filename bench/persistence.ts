/**
 * Persistence benchmark (issue 15): what the append-only log costs and how it behaves at size.
 *
 *   npm run bench:persistence                       # everything (~6 min on 2 cores)
 *   npx tsx bench/persistence.ts --only throughput  # throughput | restart | rewrite | soak
 *   npx tsx bench/persistence.ts --only throughput --mixes set --pipelines 16 --rounds 5
 *
 * - throughput: `caretkv serve` without a log, and with --data-dir under each --appendfsync, driven
 *   by the same load generator (`caretkv bench`, 50 connections), interleaved over rounds; each
 *   policy's ratio to memory-only is taken within a round, then the median. SET-only and 1:1.
 * - restart: spawn-to-first-answer of `caretkv serve --data-dir` holding 1M keys (loaded over the
 *   protocol, then the server stopped), without and with a TTL on every key, against an empty dir;
 *   once from the incremental log as written, once after a rewrite (from the base file).
 * - rewrite: event-loop delay while REWRITE snapshots 1M keys, with writes going on (in process:
 *   nothing else shares the loop).
 * - soak: 10M SETs over 100k keys through a real server with the default rewrite settings; the
 *   largest log INFO showed against 2x base + 64 MiB.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { DurableStore } from '../src/store/durable/durable.js';
import { fill, memoryKey, memoryValue } from './lib/fill.js';
import { ask, runBench } from './lib/load.js';
import { cpuSeconds, type RunningServer, startServer } from './lib/servers.js';
import { fixed, kilo, markdownTable, mb, median } from './lib/stats.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const CLI = join(ROOT, 'dist/cli.js');
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1]!;
}
const only = new Set(arg('only', 'throughput,restart,rewrite,soak').split(','));
const rounds = Number(arg('rounds', '3'));
// Throughput cells to run (default all): --mixes set,1:1 --pipelines 1,16
const mixes = new Set(arg('mixes', 'set,1:1').split(','));
const pipelines = arg('pipelines', '1,16').split(',').map(Number);
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const scratch = mkdtempSync(join(tmpdir(), 'caretkv-bench-persist-'));

// ---- throughput -----------------------------------------------------------------------------------

const TARGETS = ['memory', 'everysec', 'no', 'always'] as const;
type Target = (typeof TARGETS)[number];

function serverFlags(target: Target): string[] {
  return target === 'memory'
    ? []
    : ['--data-dir', mkdtempSync(join(scratch, `${target}-`)), '--appendfsync', target];
}

async function throughput(): Promise<string> {
  const servers = new Map<Target, RunningServer>();
  const out: string[] = [];
  try {
    for (const t of TARGETS) servers.set(t, await startServer('caretkv', CLI, serverFlags(t)));
    for (const [t, s] of servers) {
      log(`prefill ${t}`);
      await runBench(CLI, load(s, 16, ['--requests', '1', '--prefill']));
    }
    for (const [name, mix, mixArgs] of [
      ['set', 'SET only', ['--actions', 'SET']],
      ['1:1', 'SET:GET 1:1', ['--ratio', '1:1']],
    ] as const) {
      if (!mixes.has(name)) continue;
      const rows: string[][] = [];
      for (const pipeline of pipelines) {
        const ops = new Map<Target, number[]>(TARGETS.map((t) => [t, []]));
        const p99 = new Map<Target, number[]>(TARGETS.map((t) => [t, []]));
        const cpu = new Map<Target, number[]>(TARGETS.map((t) => [t, []]));
        for (let round = 0; round < rounds; round++) {
          const order = TARGETS.map((_, i) => TARGETS[(i + round) % TARGETS.length]!);
          for (const t of order) {
            const server = servers.get(t)!;
            const before = cpuSeconds(server.pid);
            const r = await runBench(
              CLI,
              load(server, pipeline, [...mixArgs, '--duration', '3', '--warmup', '0.5']),
            );
            // The server's own CPU per request (warm-up share scaled out): steadier than ops/s
            // on a machine whose 2 cores the load generator shares.
            cpu.get(t)!.push(((cpuSeconds(server.pid) - before) * (3 / 3.5) * 1e6) / r.requests);
            if (r.errors.total > 0) throw new Error(`${t}: ${r.errors.total} errors`);
            ops.get(t)!.push(r.opsPerSec);
            p99.get(t)!.push(r.latencyMs.p99);
            log(
              `${mix} p${pipeline} round ${round + 1} ${t.padEnd(8)} ${kilo(r.opsPerSec)} ops/s p99 ${fixed(r.latencyMs.p99, 2)} ms`,
            );
          }
        }
        for (const t of TARGETS) {
          const ratios = ops.get(t)!.map((v, i) => v / ops.get('memory')![i]!);
          rows.push([
            String(pipeline),
            t === 'memory' ? 'memory only' : `--appendfsync ${t}`,
            kilo(median(ops.get(t)!)),
            t === 'memory'
              ? '1'
              : `${fixed(median(ratios), 2)} (${ratios.map((r) => fixed(r, 2)).join(', ')})`,
            fixed(median(p99.get(t)!), 2),
            fixed(median(cpu.get(t)!), 2),
            t === 'memory' ? '1' : fixed(median(cpu.get(t)!.map((v, i) => v / cpu.get('memory')![i]!)), 2),
          ]);
        }
      }
      out.push(
        `${mix}, 50 connections, ${rounds} rounds of 3 s:\n\n${markdownTable(['pipeline', 'server', 'ops/s', 'vs memory only (rounds)', 'p99 ms', 'server CPU us/op', 'CPU vs memory only'], rows)}`,
      );
    }
  } finally {
    for (const s of servers.values()) await s.stop();
  }
  return out.join('\n\n');
}

function load(s: RunningServer, pipeline: number, extra: readonly string[]): string[] {
  return [
    'bench',
    '--target',
    'caretkv',
    '--port',
    String(s.port),
    '--conns',
    '50',
    '--pipeline',
    String(pipeline),
    '--keyspace',
    '100000',
    '--value-size',
    '32',
    ...extra,
    '--json',
  ];
}

// ---- restart ----------------------------------------------------------------------------------------

async function readyMs(flags: string[], times = 5): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < times; i++) {
    const s = await startServer('caretkv', CLI, flags);
    samples.push(s.readyMs);
    await s.stop();
  }
  return median(samples);
}

async function restart(): Promise<string> {
  const rows: string[][] = [];
  const empty = await readyMs(['--data-dir', mkdtempSync(join(scratch, 'empty-'))]);
  rows.push(['empty data dir', '0', fixed(empty, 0), '']);
  for (const ttl of [undefined, 3_600_000]) {
    const dir = mkdtempSync(join(scratch, 'restart-'));
    const s = await startServer('caretkv', CLI, ['--data-dir', dir]);
    log(`restart: filling 1M keys${ttl === undefined ? '' : ' with TTLs'}`);
    await fill('caretkv', s.port, 1_000_000, ttl);
    await s.stop();
    const label = ttl === undefined ? '1M keys' : '1M keys, TTL on each';
    const fromIncr = await readyMs(['--data-dir', dir]);
    rows.push([`${label}, incremental log`, '1000000', fixed(fromIncr, 0), fixed(fromIncr - empty, 0)]);
    const again = await startServer('caretkv', CLI, ['--data-dir', dir]);
    const answer = await ask(again.port, '{"action":"REWRITE"}\n');
    if (!answer.includes('"ok":true')) throw new Error(answer);
    await again.stop();
    const fromBase = await readyMs(['--data-dir', dir]);
    rows.push([
      `${label}, after REWRITE (base file)`,
      '1000000',
      fixed(fromBase, 0),
      fixed(fromBase - empty, 0),
    ]);
  }
  return `Spawn of \`caretkv serve --data-dir\` until the first answer (median of 5):\n\n${markdownTable(['log', 'keys', 'ready ms', 'replay ms (minus empty)'], rows)}`;
}

// ---- rewrite loop delay -------------------------------------------------------------------------------

async function rewriteDelay(): Promise<string> {
  const store = new DurableStore({
    dir: mkdtempSync(join(scratch, 'rewrite-')),
    appendfsync: 'everysec',
    rewritePercentage: 0,
    rewriteMinBytes: 0,
    logger: quiet,
  });
  for (let i = 0; i < 1_000_000; i++) {
    store.set(memoryKey(i), JSON.stringify(memoryValue(i)));
    if (i % 20_000 === 0) await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const rows: string[][] = [];
  // The same writes for as long, without a rewrite: the loop delay the heap alone causes (GC).
  for (let run = 0; run < 3; run++) {
    for (const rewrite of [false, true]) {
      const histogram = monitorEventLoopDelay({ resolution: 1 });
      let writes = 0;
      const writer = setInterval(() => {
        for (let i = 0; i < 100; i++) store.set(memoryKey((writes++ * 7919) % 1_000_000), '"changed"');
      }, 1);
      histogram.enable();
      const started = performance.now();
      const result = rewrite ? await store.rewrite() : await new Promise((r) => setTimeout(r, 1000));
      const ms = performance.now() - started;
      histogram.disable();
      clearInterval(writer);
      const keys = rewrite ? String((result as { keys: number }).keys) : '-';
      rows.push([
        rewrite ? 'REWRITE' : 'no rewrite (baseline)',
        keys,
        fixed(ms, 0),
        String(writes),
        fixed(histogram.percentile(99) / 1e6, 1),
        fixed(histogram.max / 1e6, 1),
      ]);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  await store.close();
  return `1M keys, 100 SETs per ms going on, in process (loop delay from monitorEventLoopDelay, 1 ms resolution), 3 runs:\n\n${markdownTable(['run', 'keys written', 'ms', 'writes meanwhile', 'loop delay p99 ms', 'loop delay max ms'], rows)}`;
}

// ---- soak: log size under overwrites ---------------------------------------------------------------------

async function soak(): Promise<string> {
  const total = Number(arg('soak-writes', '10000000'));
  const server = await startServer('caretkv', CLI, ['--data-dir', mkdtempSync(join(scratch, 'soak-'))]);
  let worst = 0;
  let worstAt = '';
  let last = { baseBytes: 0, incrBytes: 0, rewrites: 0 };
  let done = false;
  const sampler = (async () => {
    while (!done) {
      const reply = JSON.parse(await ask(server.port, '{"action":"INFO"}\n')) as {
        result: { persistence: { baseBytes: number; incrBytes: number; rewrites: number } };
      };
      last = reply.result.persistence;
      const size = last.baseBytes + last.incrBytes;
      const ratio = size / (2 * last.baseBytes + (64 << 20));
      if (ratio > worst) {
        worst = ratio;
        worstAt = `${mb(size)} with base ${mb(last.baseBytes)}`;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const started = performance.now();
  try {
    log(`soak: ${total} SETs over 100k keys`);
    const report = await runBench(CLI, load(server, 16, ['--actions', 'SET', '--requests', String(total)]));
    if (report.errors.total > 0) throw new Error(`soak: ${report.errors.total} errors`);
  } finally {
    done = true;
    await sampler;
    await server.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  return `${total / 1e6}M SETs over 100k keys through \`caretkv serve --data-dir\` (everysec, --rewrite-percentage 100, --rewrite-min-size 32 MiB; pipeline 16, 50 connections), ${fixed(seconds, 1)} s, INFO sampled every 50 ms:\n\n${markdownTable(['largest log / (2x base + 64 MiB)', 'at', 'rewrites', 'last base', 'last incremental'], [[fixed(worst, 2), worstAt, String(last.rewrites), mb(last.baseBytes), mb(last.incrBytes)]])}`;
}

async function main(): Promise<void> {
  const parts: string[] = [
    `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${mb(os.totalmem())} RAM, Node ${process.version}, load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}.`,
  ];
  try {
    if (only.has('throughput')) parts.push(await throughput());
    if (only.has('restart')) parts.push(await restart());
    if (only.has('rewrite')) parts.push(await rewriteDelay());
    if (only.has('soak')) parts.push(await soak());
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  process.stdout.write(`${parts.join('\n\n')}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
