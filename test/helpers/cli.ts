import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { LogRecord } from './server.js';

/** The built CLI (`npm test` builds first; run `npm run build` before running vitest directly). */
export const CLI_PATH = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedCli {
  child: ChildProcess;
  pid: number;
  /** JSON log lines from stdout, parsed, in order. */
  logs: LogRecord[];
  stdout(): string;
  stderr(): string;
  /** Resolves when the process exits. */
  exited: Promise<Exit>;
  /** Wait for a log line matching `predicate`. */
  waitForLog(predicate: (record: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** SIGKILL if still running, and wait for exit. Safe to call twice. */
  kill(): Promise<Exit>;
}

export interface SpawnedServer extends SpawnedCli {
  host: string;
  port: number;
}

/** The environment for a child: ours minus any CARETKV_* a developer has set, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('CARETKV_')),
  );
  return { ...clean, ...env };
}

/** Spawn `node dist/cli.js ...args`; stdout is parsed as JSON log lines as they arrive. */
export function spawnCli(args: readonly string[], { env = {} as Record<string, string> } = {}): SpawnedCli {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first`);
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogRecord[] = [];
  let stdout = '';
  let stderr = '';
  let partial = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    stdout += text;
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line));
      } catch {
        // Not a log line (help text, pretty output); it stays available in stdout().
      }
    }
    for (const wake of waiters) wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  const exited = new Promise<Exit>((resolve) => {
    // 'close', not 'exit': by then stdout and stderr are fully read.
    child.once('close', (code, signal) => {
      for (const wake of waiters) wake();
      resolve({ code, signal });
    });
  });

  const waitForLog = (predicate: (record: LogRecord) => boolean, timeoutMs = 15_000) =>
    new Promise<LogRecord>((resolve, reject) => {
      const check = () => {
        const found = logs.find(predicate);
        if (found) return done(undefined, found);
        if (child.exitCode !== null || child.signalCode !== null) {
          done(new Error(`process exited (${child.exitCode ?? child.signalCode}) first; stderr: ${stderr}`));
        }
      };
      const timer = setTimeout(
        () => done(new Error(`no matching log line in ${timeoutMs} ms; stderr: ${stderr}`)),
        timeoutMs,
      );
      const done = (err?: Error, record?: LogRecord) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (err) reject(err);
        else resolve(record!);
      };
      waiters.add(check);
      check();
    });

  return {
    child,
    pid: child.pid!,
    logs,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitForLog,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}

/** Spawn a server command (`echo`, `serve`) on an ephemeral port and wait for its `listening` line. */
export async function spawnServer(
  args: readonly string[],
  options: { env?: Record<string, string> } = {},
): Promise<SpawnedServer> {
  const cli = spawnCli([...args, '--port', '0', '--log-format', 'json'], options);
  try {
    const listening = await cli.waitForLog((record) => record.msg === 'listening');
    return { ...cli, host: String(listening.host), port: Number(listening.port) };
  } catch (err) {
    await cli.kill();
    throw err;
  }
}

/** Run the CLI to completion: exit status and output. */
export async function runCli(
  args: readonly string[],
  options: { env?: Record<string, string> } = {},
): Promise<Exit & { stdout: string; stderr: string }> {
  const cli = spawnCli(args, options);
  const exit = await cli.exited;
  return { ...exit, stdout: cli.stdout(), stderr: cli.stderr() };
}

/** Resident set size of a process in bytes, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}
