/** Runs the load generator (`caretkv bench --json`) of a build and returns its report. */
import { spawn } from 'node:child_process';

export interface BenchJson {
  requests: number;
  opsPerSec: number;
  latencyMs: { p50: number; p99: number };
  errors: { total: number };
  generator: { cpuPercent: number };
}

export function runBench(cli: string, argv: readonly string[]): Promise<BenchJson> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [cli, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`bench ${argv.join(' ')} exited ${code}: ${err.trim()}`));
      else resolvePromise(JSON.parse(out) as BenchJson);
    });
  });
}
