/**
 * The macro benchmark behind `npm run bench`: caretkv against Redis and against its own transport
 * (`caretkv echo`), on this machine, now; rewrites the generated section of docs/benchmarks.md.
 *
 *   npm run bench                               # build, run everything, rewrite the "latest" section
 *   npx tsx bench/run.ts --rounds 3 --dry       # print only
 *   npx tsx bench/run.ts --section baseline     # write the "baseline" section instead
 *   npx tsx bench/run.ts --only throughput      # throughput | memory | startup (comma list)
 *
 * Honest numbers on a shared, small machine:
 * - every target is driven by the same load generator (`caretkv bench`), with the same
 *   connections, pipeline depth, keys and values;
 * - targets are interleaved (caretkv, redis, echo; then redis, echo, caretkv; ...) over several
 *   short rounds, and each ratio is taken within a round before the median is taken, so a noisy
 *   neighbour slows all three targets of a round rather than one target's whole sample;
 * - each server's own CPU time per request (from /proc/<pid>/stat) is reported beside its
 *   throughput: it moves far less with machine load than ops/s does;
 * - the load average is recorded at the start and end.
 * Redis runs only when a `redis-server` binary is on PATH (Debian: `apt-get install redis-server`);
 * without it the Redis rows say so.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fill, MEMORY_KEYS, MEMORY_NAMESPACES } from './lib/fill.js';
import { ask, runBench } from './lib/load.js';
import {
  cpuSeconds,
  launcherNodeFlags,
  type RunningServer,
  redisAvailable,
  redisVersion,
  rssBytes,
  type ServerKind,
  startServer,
} from './lib/servers.js';
import { fixed, kilo, markdownTable, mb, median } from './lib/stats.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Args {
  rounds: number;
  duration: number;
  warmup: number;
  conns: number;
  pipelines: number[];
  keyspace: number;
  valueSize: number;
  memoryKeys: number;
  cli: string;
  out: string;
  section: string;
  /** Shown as the commit when the server was built from a copy outside this repository. */
  commit: string | undefined;
  dry: boolean;
  only: Set<string>;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    rounds: 5,
    duration: 3,
    warmup: 0.5,
    conns: 50,
    pipelines: [1, 16],
    keyspace: 100_000,
    valueSize: 32,
    memoryKeys: MEMORY_KEYS,
    cli: join(ROOT, 'dist/cli.js'),
    out: join(ROOT, 'docs/benchmarks.md'),
    section: 'latest',
    commit: undefined,
    dry: false,
    only: new Set(['throughput', 'memory', 'startup']),
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--rounds':
        args.rounds = Number(value());
        break;
      case '--duration':
        args.duration = Number(value());
        break;
      case '--warmup':
        args.warmup = Number(value());
        break;
      case '--conns':
        args.conns = Number(value());
        break;
      case '--pipelines':
        args.pipelines = value().split(',').map(Number);
        break;
      case '--memory-keys':
        args.memoryKeys = Number(value());
        break;
      case '--cli':
        args.cli = resolve(value());
        break;
      case '--out':
        args.out = resolve(value());
        break;
      case '--section':
        args.section = value();
        break;
      case '--commit':
        args.commit = value();
        break;
      case '--only':
        args.only = new Set(value().split(','));
        break;
      case '--dry':
        args.dry = true;
        break;
      default:
        throw new Error(`unknown option ${flag}`);
    }
  }
  if (!existsSync(args.cli)) throw new Error(`${args.cli} not found: run \`npm run build\` first`);
  return args;
}

const log = (message: string): void => {
  process.stderr.write(`${message}\n`);
};

const load = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

// ---- throughput ---------------------------------------------------------------------------------

interface Sample {
  opsPerSec: number;
  p50: number;
  p99: number;
  /** Server CPU (user + system) per measured request, in microseconds. */
  cpuUsPerOp: number;
  generatorCpu: number;
  errors: number;
}

function benchArgs(args: Args, server: RunningServer, pipeline: number, extra: string[]): string[] {
  return [
    'bench',
    '--target',
    server.kind,
    '--port',
    String(server.port),
    '--conns',
    String(args.conns),
    '--pipeline',
    String(pipeline),
    '--keyspace',
    String(args.keyspace),
    '--value-size',
    String(args.valueSize),
    '--ratio',
    '1:1',
    ...extra,
    '--json',
  ];
}

async function measure(args: Args, server: RunningServer, pipeline: number): Promise<Sample> {
  const extra = ['--duration', String(args.duration), '--warmup', String(args.warmup)];
  const before = cpuSeconds(server.pid);
  const report = await runBench(args.cli, benchArgs(args, server, pipeline, extra));
  const cpu = cpuSeconds(server.pid) - before;
  // The warm-up's requests are served too but not counted: scale CPU to the measured share.
  const share = args.duration / (args.duration + args.warmup);
  return {
    opsPerSec: report.opsPerSec,
    p50: report.latencyMs.p50,
    p99: report.latencyMs.p99,
    cpuUsPerOp: report.requests > 0 ? (cpu * share * 1e6) / report.requests : Number.NaN,
    generatorCpu: report.generator.cpuPercent,
    errors: report.errors.total,
  };
}

type Samples = Map<ServerKind, Sample[]>;

interface ThroughputResult {
  byPipeline: Map<number, Samples>;
  loadBefore: string;
  loadAfter: string;
  targets: ServerKind[];
}

async function throughput(args: Args, withRedis: boolean): Promise<ThroughputResult> {
  const targets: ServerKind[] = withRedis ? ['caretkv', 'redis', 'echo'] : ['caretkv', 'echo'];
  const servers = new Map<ServerKind, RunningServer>();
  try {
    for (const kind of targets) servers.set(kind, await startServer(kind, args.cli));
    // Every key once, unmeasured, so GETs hit (caretkv answers a miss with an error, Redis with nil).
    for (const kind of targets) {
      if (kind === 'echo') continue;
      log(`prefill ${kind}`);
      await runBench(args.cli, benchArgs(args, servers.get(kind)!, 16, ['--requests', '1', '--prefill']));
    }
    const loadBefore = load();
    const byPipeline = new Map<number, Samples>();
    for (const pipeline of args.pipelines) {
      const samples: Samples = new Map(targets.map((t) => [t, []]));
      for (let round = 0; round < args.rounds; round++) {
        // Rotate the order each round so no target always runs first (or right after another).
        const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
        for (const kind of order) {
          const sample = await measure(args, servers.get(kind)!, pipeline);
          samples.get(kind)!.push(sample);
          log(
            `pipeline ${pipeline} round ${round + 1}/${args.rounds} ${kind.padEnd(7)} ${kilo(sample.opsPerSec).padStart(7)} ops/s  p99 ${fixed(sample.p99, 2)} ms  server ${fixed(sample.cpuUsPerOp, 2)} us/op  load ${load()}`,
          );
        }
      }
      byPipeline.set(pipeline, samples);
    }
    return { byPipeline, loadBefore, loadAfter: load(), targets };
  } finally {
    for (const server of servers.values()) await server.stop();
  }
}

/** Median over rounds of a per-round ratio between two targets. */
function roundRatio(samples: Samples, a: ServerKind, b: ServerKind, field: keyof Sample): number[] {
  const as = samples.get(a);
  const bs = samples.get(b);
  if (as === undefined || bs === undefined) return [];
  return as.map((s, i) => s[field] / bs[i]![field]);
}

function ratioCell(values: number[]): string {
  if (values.length === 0) return 'n/a (no redis-server)';
  return `**${fixed(median(values), 2)}x** (${fixed(Math.min(...values), 2)}–${fixed(Math.max(...values), 2)})`;
}

function throughputMarkdown(args: Args, result: ThroughputResult, withRedis: boolean): string {
  const rows: string[][] = [];
  for (const [pipeline, samples] of result.byPipeline) {
    for (const kind of result.targets) {
      const s = samples.get(kind)!;
      rows.push([
        String(pipeline),
        kind === 'echo' ? 'caretkv echo' : kind,
        kilo(median(s.map((x) => x.opsPerSec))),
        fixed(median(s.map((x) => x.p50)), 2),
        fixed(median(s.map((x) => x.p99)), 2),
        fixed(median(s.map((x) => x.cpuUsPerOp)), 2),
        fixed(median(s.map((x) => x.generatorCpu)), 0),
        String(s.reduce((n, x) => n + x.errors, 0)),
      ]);
    }
  }
  const ratios: string[][] = [];
  for (const [pipeline, samples] of result.byPipeline) {
    ratios.push([
      String(pipeline),
      ratioCell(roundRatio(samples, 'caretkv', 'redis', 'opsPerSec')),
      ratioCell(roundRatio(samples, 'caretkv', 'echo', 'opsPerSec')),
      ratioCell(roundRatio(samples, 'caretkv', 'redis', 'p99')),
      ratioCell(roundRatio(samples, 'caretkv', 'redis', 'cpuUsPerOp')),
    ]);
  }
  return [
    `${args.conns} connections, SET:GET 1:1, ${args.keyspace / 1000}k keys (prefilled), ${args.valueSize}-byte values;`,
    `${args.rounds} interleaved rounds of ${args.duration} s (after ${args.warmup} s warm-up) per target and pipeline depth;`,
    `medians over the rounds. Load average ${result.loadBefore} before, ${result.loadAfter} after.`,
    withRedis ? '' : '\n**redis-server was not found on PATH: no Redis rows.**',
    '',
    markdownTable(
      ['pipeline', 'target', 'ops/s', 'p50 ms', 'p99 ms', 'server CPU µs/op', 'generator CPU %', 'errors'],
      rows,
    ),
    '',
    'Ratios are taken within each round, then the median (min–max over rounds):',
    '',
    markdownTable(
      [
        'pipeline',
        'caretkv / redis ops/s',
        'caretkv / echo ops/s',
        'caretkv / redis p99',
        'caretkv / redis CPU per op',
      ],
      ratios,
    ),
  ].join('\n');
}

// ---- memory -------------------------------------------------------------------------------------

interface MemoryRow {
  label: string;
  server: ServerKind;
  emptyRss: number;
  fullRss: number;
  keys: number;
  loadSeconds: number;
}

/** One request, one reply line: for COUNT and DBSIZE after a fill. */
async function keyCount(server: RunningServer): Promise<number> {
  if (server.kind === 'redis') return Number((await ask(server.port, '*1\r\n$6\r\nDBSIZE\r\n')).slice(1));
  const reply = JSON.parse(await ask(server.port, '{"action":"COUNT"}\n')) as { result: number };
  return reply.result;
}

async function memoryOne(
  args: Args,
  kind: 'caretkv' | 'redis',
  ttlMs: number | undefined,
): Promise<MemoryRow> {
  const server = await startServer(kind, args.cli);
  try {
    await new Promise((r) => setTimeout(r, 300));
    const emptyRss = rssBytes(server.pid);
    const started = performance.now();
    const acked = await fill(kind, server.port, args.memoryKeys, ttlMs);
    const loadSeconds = (performance.now() - started) / 1000;
    const keys = await keyCount(server);
    if (acked !== args.memoryKeys || keys !== args.memoryKeys) {
      throw new Error(`${kind}: ${acked} SETs acknowledged, ${keys} keys held, ${args.memoryKeys} expected`);
    }
    // Let the server finish what the load left (allocator, GC) before reading RSS.
    await new Promise((r) => setTimeout(r, 1000));
    return {
      label: ttlMs === undefined ? 'no TTL' : 'every key with a TTL',
      server: kind,
      emptyRss,
      fullRss: rssBytes(server.pid),
      keys,
      loadSeconds,
    };
  } finally {
    await server.stop();
  }
}

async function memory(args: Args, withRedis: boolean): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  for (const ttl of [undefined, 3_600_000]) {
    for (const kind of withRedis ? (['caretkv', 'redis'] as const) : (['caretkv'] as const)) {
      log(`memory ${kind} ${ttl === undefined ? '' : 'ttl'}`);
      rows.push(await memoryOne(args, kind, ttl));
    }
  }
  return rows;
}

function memoryMarkdown(args: Args, rows: MemoryRow[]): string {
  const table = rows.map((r) => {
    const redis = rows.find((x) => x.server === 'redis' && x.label === r.label);
    return [
      r.label,
      r.server,
      mb(r.emptyRss),
      mb(r.fullRss),
      fixed((r.fullRss - r.emptyRss) / r.keys, 0),
      fixed(r.fullRss / r.keys, 0),
      r.server === 'caretkv' && redis !== undefined ? `**${fixed(r.fullRss / redis.fullRss, 2)}x**` : '',
      fixed(r.loadSeconds, 1),
    ];
  });
  return [
    `${args.memoryKeys.toLocaleString('en-US')} keys in ${MEMORY_NAMESPACES} namespaces (16-byte paths such as`,
    '`ns0042^k00017345`), 32-byte string values, loaded over each server’s own protocol (4 connections,',
    '500 SETs in flight each); the TTL rows give every key a 1 h TTL. RSS is VmRSS of the server',
    'process 1 s after the load, without forcing a GC; the key count is checked (COUNT / DBSIZE).',
    '',
    markdownTable(
      [
        'dataset',
        'server',
        'RSS empty',
        'RSS loaded',
        'bytes/key (loaded − empty)',
        'bytes/key (RSS)',
        'RSS vs redis',
        'load s',
      ],
      table,
    ),
  ].join('\n');
}

// ---- startup ------------------------------------------------------------------------------------

async function startup(args: Args, withRedis: boolean): Promise<string> {
  const rows: string[][] = [];
  for (const kind of withRedis ? (['caretkv', 'redis'] as const) : (['caretkv'] as const)) {
    const times: number[] = [];
    for (let i = 0; i < 7; i++) {
      const server = await startServer(kind, args.cli);
      times.push(server.readyMs);
      await server.stop();
    }
    rows.push([kind, fixed(median(times), 0), fixed(Math.min(...times), 0), fixed(Math.max(...times), 0)]);
  }
  return [
    'Process spawn until the first request is answered (PING over TCP, polled every 2 ms), 7 starts:',
    '',
    markdownTable(['server', 'median ms', 'min ms', 'max ms'], rows),
  ].join('\n');
}

// ---- document -----------------------------------------------------------------------------------

function machine(args: Args): string {
  const cpus = os.cpus();
  const git = spawnSync('git', ['describe', '--always', '--dirty'], { cwd: ROOT, encoding: 'utf8' });
  const commit = args.commit ?? (git.status === 0 ? git.stdout.trim() : 'unknown');
  return markdownTable(
    ['', ''],
    [
      ['date', new Date().toISOString().slice(0, 16).replace('T', ' ')],
      ['commit', `\`${commit}\``],
      ['cpu', `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown'}`],
      ['memory', mb(os.totalmem())],
      ['os', `${os.type()} ${os.release()}`],
      ['node', process.version],
      ['redis', redisVersion() ?? 'not installed'],
      ['load average at start (1/5/15 min)', load()],
      [
        'server',
        args.cli.startsWith(ROOT) ? `\`${relative(ROOT, args.cli)}\`` : 'a build of the commit above',
      ],
    ],
  );
}

function commands(args: Args): string {
  const cli = 'node dist/cli.js';
  // Servers run with the Node flags of the command's #! line, as `caretkv serve` and `npm start` do.
  const server = ['node', ...launcherNodeFlags(args.cli), 'dist/cli.js'].join(' ');
  return [
    '```sh',
    `${server} serve --port P --log-level warn`,
    `${server} echo --port P --log-level warn`,
    "redis-server --port P --bind 127.0.0.1 --save '' --appendonly no --loglevel warning",
    `${cli} bench --target caretkv|redis --port P --conns ${args.conns} --pipeline 16 --keyspace ${args.keyspace} --value-size ${args.valueSize} --ratio 1:1 --requests 1 --prefill --json   # once`,
    `${cli} bench --target caretkv|redis|echo --port P --conns ${args.conns} --pipeline 1|16 --keyspace ${args.keyspace} --value-size ${args.valueSize} --ratio 1:1 --duration ${args.duration} --warmup ${args.warmup} --json`,
    '```',
  ].join('\n');
}

function skeleton(): string {
  return `# Benchmarks

Reproduce with \`npm ci && npm run bench\` (builds, then runs \`bench/run.ts\`, which rewrites the
generated sections below). The Redis comparison needs a \`redis-server\` binary on PATH
(Debian/Ubuntu: \`apt-get install redis-server\`); without one the Redis rows are left out.

<!-- bench:latest:begin -->
<!-- bench:latest:end -->
`;
}

/** Through Biome's Markdown formatter, so the rewritten document passes `npm run lint` as is. */
function formatMarkdown(text: string): string {
  return execFileSync(
    join(ROOT, 'node_modules/.bin/biome'),
    ['format', '--stdin-file-path=docs/benchmarks.md'],
    {
      cwd: ROOT,
      input: text,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'ignore'],
    },
  );
}

function replaceSection(doc: string, section: string, body: string): string {
  const begin = `<!-- bench:${section}:begin -->`;
  const end = `<!-- bench:${section}:end -->`;
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from === -1 || to === -1 || to < from) return `${doc.trimEnd()}\n\n${begin}\n${body}\n${end}\n`;
  return `${doc.slice(0, from + begin.length)}\n${body}\n${doc.slice(to)}`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const withRedis = redisAvailable();
  if (!withRedis) log('redis-server not found on PATH: running without the Redis comparison');
  const parts: string[] = [`### Machine\n\n${machine(args)}`];
  if (args.only.has('throughput')) {
    const result = await throughput(args, withRedis);
    parts.push(`### Throughput and latency\n\n${throughputMarkdown(args, result, withRedis)}`);
  }
  if (args.only.has('memory')) {
    parts.push(`### Memory\n\n${memoryMarkdown(args, await memory(args, withRedis))}`);
  }
  if (args.only.has('startup')) parts.push(`### Startup to ready\n\n${await startup(args, withRedis)}`);
  parts.push(`### Commands\n\n${commands(args)}`);
  const body = parts.join('\n\n');
  console.log(body);
  if (args.dry) return;
  const doc = existsSync(args.out) ? readFileSync(args.out, 'utf8') : skeleton();
  writeFileSync(args.out, formatMarkdown(replaceSection(doc, args.section, body)));
  log(`wrote section "${args.section}" of ${relative(ROOT, args.out)}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
