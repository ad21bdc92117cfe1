/**
 * Server processes for the macro benchmark: spawn on a free port, wait until the server answers a
 * request (not merely accepts), read its CPU time and RSS from /proc, stop it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

export type ServerKind = 'caretkv' | 'echo' | 'redis';

export interface RunningServer {
  readonly kind: ServerKind;
  readonly port: number;
  readonly pid: number;
  /** Spawn to first answered request, in ms. */
  readonly readyMs: number;
  stop(): Promise<void>;
}

/** A port nobody listens on right now (the OS picks it; a race with other processes is possible but rare). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export function redisVersion(): string | null {
  const out = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (out.status !== 0) return null;
  return /v=(\S+)/.exec(out.stdout)?.[1] ?? out.stdout.trim();
}

/** What each kind answers to prove it is ready: the request bytes and a test on the reply. */
const PROBES: Record<ServerKind, { send: string; done: (reply: string) => boolean }> = {
  caretkv: { send: '{"action":"PING"}\n', done: (r) => r.includes('\n') },
  echo: { send: 'ping\n', done: (r) => r.includes('\n') },
  redis: { send: '*1\r\n$4\r\nPING\r\n', done: (r) => r.includes('\r\n') },
};

function probeOnce(kind: ServerKind, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write(PROBES[kind].send));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (PROBES[kind].done(reply)) finish(true);
    });
  });
}

/**
 * The Node flags of a `caretkv` build's `#!` line (`#!/usr/bin/env -S node --max-semi-space-size=32`
 * gives `['--max-semi-space-size=32']`): servers are measured as the command runs them, and a build
 * from before the line had flags is measured without.
 */
export function launcherNodeFlags(cli: string): string[] {
  const first = readFileSync(cli, 'utf8').split('\n', 1)[0]!;
  if (!first.startsWith('#!')) return [];
  const words = first.slice(2).trim().split(/\s+/);
  const node = words.indexOf('node');
  return node === -1 ? [] : words.slice(node + 1);
}

function commandFor(
  kind: ServerKind,
  cli: string,
  port: number,
  extra: readonly string[],
): [string, string[]] {
  switch (kind) {
    case 'caretkv':
      return [
        process.execPath,
        [...launcherNodeFlags(cli), cli, 'serve', '--port', String(port), '--log-level', 'warn', ...extra],
      ];
    case 'echo':
      return [
        process.execPath,
        [...launcherNodeFlags(cli), cli, 'echo', '--port', String(port), '--log-level', 'warn'],
      ];
    case 'redis':
      return [
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--appendonly',
          'no',
          '--loglevel',
          'warning',
        ],
      ];
  }
}

/** Starts a server and resolves once it answered a request; `readyMs` is spawn-to-answer. */
/** `extra`: more `caretkv serve` flags (e.g. `--data-dir`); ignored for the other kinds. */
export async function startServer(
  kind: ServerKind,
  cli: string,
  extra: readonly string[] = [],
): Promise<RunningServer> {
  const port = await freePort();
  const [command, args] = commandFor(kind, cli, port, extra);
  const started = performance.now();
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = started + 10_000;
  for (;;) {
    if (exited) throw new Error(`${kind} exited before it was ready: ${stderr.trim()}`);
    if (await probeOnce(kind, port)) break;
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${kind} was not ready within 10 s: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  const readyMs = performance.now() - started;
  return {
    kind,
    port,
    pid: child.pid!,
    readyMs,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** User + system CPU seconds a process has used (utime and stime of /proc/<pid>/stat). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may contain spaces; fields after it are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident set size in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}
