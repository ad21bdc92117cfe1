/** Small helpers shared by the benchmarks: medians, formatting, Markdown tables, a timing loop. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** `12345` -> `12.3k`. */
export function kilo(value: number): string {
  return Number.isFinite(value) ? `${(value / 1000).toFixed(1)}k` : 'n/a';
}

export function mb(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Plain-text table for the console (micro-benchmarks print these). */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export interface MicroResult {
  name: string;
  /** Median nanoseconds per operation over the runs. */
  nsPerOp: number;
}

/** Keeps results alive so the optimiser cannot drop the measured work. */
export let sink: unknown;

/** CPU time (user + system) this process has used, in ms. */
export function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/**
 * Times `op(i)` for i in [0, ops), `runs` times after one warm-up run, and returns the median
 * ns/op. `op` should return its result (it is kept alive through `sink`).
 *
 * The clock is the process's CPU time, not the wall clock: on a machine shared with other work
 * (2 cores, load average above the core count) wall time mostly measures how often the scheduler
 * let us run. CPU time still includes GC (helper threads too), which is part of the cost.
 */
export function micro(name: string, op: (i: number) => unknown, ops = 1_000_000, runs = 5): MicroResult {
  const times: number[] = [];
  for (let run = -1; run < runs; run++) {
    const started = cpuMs();
    let last: unknown;
    for (let i = 0; i < ops; i++) last = op(i);
    const elapsed = cpuMs() - started;
    sink = last;
    if (run >= 0) times.push((elapsed * 1e6) / ops);
  }
  return { name, nsPerOp: median(times) };
}

/** Prints micro-benchmark rows with a reference row's ns/op as 1.00x. */
export function printMicro(title: string, results: readonly MicroResult[]): void {
  console.log(`\n${title}`);
  const base = results[0]?.nsPerOp ?? 1;
  console.log(
    textTable(
      ['case', 'ns/op', 'M ops/s', 'vs first'],
      results.map((r) => [
        r.name,
        fixed(r.nsPerOp, 1),
        fixed(1000 / r.nsPerOp, 2),
        `${fixed(r.nsPerOp / base, 2)}x`,
      ]),
    ),
  );
}
