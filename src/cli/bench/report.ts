import type { Histogram } from 'hdr-histogram-js';
import type { LoadResult } from './load.js';
import { ACTIONS, type Action, type BenchOptions, describeMix, type Target } from './options.js';

/**
 * One run's result. This is also the `--json` output: field names are stable, add fields rather
 * than rename them. Latencies are milliseconds (recorded in microseconds).
 */
export interface BenchReport {
  target: Target;
  host: string;
  port: number;
  conns: number;
  pipeline: number;
  threads: number;
  mix: Partial<Record<Action, number>>;
  keyspace: number;
  valueSize: number;
  warmupSeconds: number;
  /** Whether every key was SET once before the run (`--prefill`). */
  prefill: boolean;
  /** Measured replies (errors included). */
  requests: number;
  durationSeconds: number;
  opsPerSec: number;
  latencyMs: { avg: number; p50: number; p90: number; p99: number; p999: number; max: number };
  errors: { total: number; byCode: Record<string, number> };
  generator: {
    /** The whole generator process (all threads, GC included), as % of one core. */
    cpuPercent: number;
    /** The busiest generator thread's event-loop utilisation over the run (0..1). */
    eventLoopUtilization: number;
    saturated: boolean;
    cores: number;
  };
  /** True when the run was interrupted (Ctrl-C) before its duration or request count. */
  stoppedEarly: boolean;
}

/**
 * The generator limits what it measures when a thread's event loop is this busy AND the process
 * really burns the CPU for it. Event-loop utilisation alone also reads high when the OS schedules
 * the generator out (a 2-core machine shared with the server): measured here, 88% busy at 54% CPU.
 */
export const SATURATION_ELU = 0.9;
export const SATURATION_CPU_PER_THREAD = 80;

const round = (value: number, digits: number): number => {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
};

export interface ReportInput {
  options: BenchOptions;
  threads: number;
  cores: number;
  results: readonly LoadResult[];
  histogram: Histogram;
  cpuPercent: number;
}

export function buildReport(input: ReportInput): BenchReport {
  const { options, results, histogram } = input;
  const requests = results.reduce((sum, r) => sum + r.requests, 0);
  // Threads start together; the slowest one's window is the run's.
  const elapsedMs = Math.max(0, ...results.map((r) => r.elapsedMs));
  const byCode: Record<string, number> = {};
  for (const result of results) {
    for (const [code, count] of Object.entries(result.errors)) byCode[code] = (byCode[code] ?? 0) + count;
  }
  const sortedCodes = Object.fromEntries(Object.entries(byCode).sort(([a], [b]) => a.localeCompare(b)));
  const ms = (us: number): number => round(us / 1000, 3);
  const empty = histogram.totalCount === 0;
  const at = (p: number): number => (empty ? 0 : ms(histogram.getValueAtPercentile(p)));
  const elu = Math.max(0, ...results.map((r) => r.eventLoopUtilization));
  const mix: Partial<Record<Action, number>> = {};
  for (const action of ACTIONS) if (options.mix[action] > 0) mix[action] = options.mix[action];

  return {
    target: options.target,
    host: options.host,
    port: options.port,
    conns: options.conns,
    pipeline: options.pipeline,
    threads: input.threads,
    mix,
    keyspace: options.keyspace,
    valueSize: options.valueSize,
    warmupSeconds: options.warmupSeconds,
    prefill: options.prefill,
    requests,
    durationSeconds: round(elapsedMs / 1000, 3),
    opsPerSec: elapsedMs > 0 ? Math.round(requests / (elapsedMs / 1000)) : 0,
    latencyMs: {
      avg: empty ? 0 : ms(histogram.mean),
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max: empty ? 0 : ms(histogram.maxValue),
    },
    errors: { total: Object.values(byCode).reduce((a, b) => a + b, 0), byCode: sortedCodes },
    generator: {
      cpuPercent: round(input.cpuPercent, 1),
      eventLoopUtilization: round(elu, 3),
      saturated: elu > SATURATION_ELU && input.cpuPercent >= SATURATION_CPU_PER_THREAD * input.threads,
      cores: input.cores,
    },
    stoppedEarly: results.some((r) => r.stoppedEarly),
  };
}

const thousands = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (n: number): string => n.toFixed(3);

/** The human-readable table printed at the end of a run. */
export function formatReport(report: BenchReport): string {
  const { latencyMs: l, generator: g } = report;
  const rows: [string, string][] = [
    ['target', `${report.target} ${report.host}:${report.port}`],
    ['load', `${report.conns} conns x pipeline ${report.pipeline}, ${report.threads} thread(s)`],
    [
      'workload',
      `${describeMix(report.mix as BenchOptions['mix'])}, ${thousands(report.keyspace)} keys${report.prefill ? ' (prefilled)' : ''}, ${report.valueSize}-byte values`,
    ],
    [
      'requests',
      `${thousands(report.requests)} in ${report.durationSeconds.toFixed(2)} s${report.stoppedEarly ? ' (stopped early)' : ''}`,
    ],
    ['throughput', `${thousands(report.opsPerSec)} ops/s`],
    ['latency ms', 'avg       p50       p90       p99       p99.9     max'],
    [
      '',
      [l.avg, l.p50, l.p90, l.p99, l.p999, l.max]
        .map((v) => fixed(v).padEnd(9))
        .join(' ')
        .trimEnd(),
    ],
    [
      'errors',
      report.errors.total === 0
        ? '0'
        : `${thousands(report.errors.total)} (${Object.entries(report.errors.byCode)
            .map(([code, count]) => `${code} ${thousands(count)}`)
            .join(', ')})`,
    ],
    [
      'generator',
      `${g.cpuPercent.toFixed(0)}% CPU of one core, busiest thread ${(g.eventLoopUtilization * 100).toFixed(0)}% busy (${g.cores} cores)`,
    ],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  const lines = rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`);
  if (g.saturated) {
    lines.push(
      '',
      `  warning: the load generator looks saturated (${g.cpuPercent.toFixed(0)}% CPU, a thread ${(g.eventLoopUtilization * 100).toFixed(0)}% busy):`,
      '  these numbers may measure the generator, not the server.',
      g.cores <= report.threads + 1
        ? `  This machine has ${g.cores} cores: the generator and the server already fill them, so more`
        : '  Try more --threads (each owns a share of the connections), or run the generator on',
      g.cores <= report.threads + 1
        ? '  --threads will not help; run the generator on another machine to measure the server alone.'
        : '  another machine.',
    );
  }
  if (report.target === 'caretkv' && (report.errors.byCode.KEY_NOT_FOUND ?? 0) > 0) {
    lines.push(
      '',
      '  note: KEY_NOT_FOUND comes from GETs of keys no SET has written yet (Redis answers nil there);',
      '  --prefill writes every key first.',
    );
  }
  return `${lines.join('\n')}\n`;
}
