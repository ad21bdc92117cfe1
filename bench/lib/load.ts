/** Talking to servers under test: the load generator (`caretkv bench --json`) and one-off requests. */
import { spawn } from 'node:child_process';
import net from 'node:net';

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

/** Sends `request` (a whole protocol request, terminator included) and resolves with the first reply line. */
export function ask(port: number, request: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    socket.once('error', reject);
    socket.once('connect', () => socket.write(request));
    socket.on('data', (c: Buffer) => {
      reply += c.toString();
      if (reply.includes('\n')) {
        socket.destroy();
        resolvePromise(reply.trim());
      }
    });
  });
}
