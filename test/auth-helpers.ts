/** Helpers for the auth and TLS black-box suites: servers with users, and a line-level client. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { hashPassword } from '../src/auth/password.js';
import type { UsersConfig } from '../src/auth/users.js';
import { type Config, loadConfig } from '../src/config.js';
import { type CaretServer, createServer } from '../src/server.js';
import { captureLogger, type LogRecord } from './helpers/server.js';

export interface AuthServer {
  server: CaretServer;
  host: string;
  port: number;
  logs: LogRecord[];
  /** Replace the file the server re-reads on reload. */
  setFile(file: Record<string, unknown>): void;
  close(): Promise<unknown>;
}

/** Start a server whose "config file" is `file` (held in memory; `setFile` changes it for reload). */
export async function startAuthServer(
  file: Record<string, unknown>,
  flags: Record<string, unknown> = {},
): Promise<AuthServer> {
  let current = file;
  const load = (): Config =>
    loadConfig({ file: current, fileName: 'test.json', flags: { port: 0, ...flags } });
  const { logger, records } = captureLogger('debug');
  const server = createServer(load(), { logger, reloadConfig: load });
  const { host, port } = await server.listen();
  return {
    server,
    host,
    port,
    logs: records,
    setFile: (next) => {
      current = next;
    },
    close: () => server.close(),
  };
}

/** Password hashes are slow on purpose; tests hash each password once. */
const hashes = new Map<string, Promise<string>>();
export function hashOf(password: string): Promise<string> {
  let h = hashes.get(password);
  if (h === undefined) {
    h = hashPassword(password);
    hashes.set(password, h);
  }
  return h;
}

export async function users(
  spec: Record<string, Omit<UsersConfig[string], 'password'> & { password: string }>,
): Promise<UsersConfig> {
  const out: UsersConfig = {};
  for (const [name, u] of Object.entries(spec)) out[name] = { ...u, password: await hashOf(u.password) };
  return out;
}

export type Line = Record<string, unknown> & {
  ok?: boolean;
  result?: unknown;
  error?: { code: string; message: string };
  event?: string;
};

/** A raw NDJSON connection: `request()` resolves with the next response line; pushes are collected. */
export class LineClient {
  readonly pushes: Line[] = [];
  readonly responses: Line[] = [];
  closed = false;
  error: Error | undefined;
  private buf = '';
  private waiters: ((line: Line) => void)[] = [];
  private closeWaiters: (() => void)[] = [];

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buf += text;
      let nl = this.buf.indexOf('\n');
      while (nl !== -1) {
        const line = JSON.parse(this.buf.slice(0, nl)) as Line;
        this.buf = this.buf.slice(nl + 1);
        if (line.event !== undefined) this.pushes.push(line);
        else {
          const w = this.waiters.shift();
          if (w) w(line);
          else this.responses.push(line);
        }
        nl = this.buf.indexOf('\n');
      }
    });
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  static async connect(
    port: number,
    host = '127.0.0.1',
    options?: tls.ConnectionOptions,
  ): Promise<LineClient> {
    const socket = options ? tls.connect({ port, host, ...options }) : net.connect({ port, host });
    const client = new LineClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once(options ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    return client;
  }

  /** The next response line (or one that already arrived unasked, e.g. a refusal at accept). */
  next(timeoutMs = 10_000): Promise<Line> {
    const ready = this.responses.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no response line in time')), timeoutMs);
      this.waiters.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  }

  send(request: Record<string, unknown>): void {
    this.socket.write(`${JSON.stringify(request)}\n`);
  }

  request(request: Record<string, unknown>): Promise<Line> {
    const line = this.next();
    this.send(request);
    return line;
  }

  waitClosed(timeoutMs = 10_000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connection did not close in time')), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface Certificates {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second server certificate from the same CA (for reload tests). */
  serverCert2: string;
  serverKey2: string;
  cleanup(): void;
}

/** A throwaway CA, server certificates for localhost/127.0.0.1 and a client certificate (openssl). */
export function makeCertificates(): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'caretkv-tls-'));
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=caretkv test CA',
    '-keyout',
    path('ca.key'),
    '-out',
    path('ca.pem'),
  );
  writeFileSync(path('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  writeFileSync(path('client.ext'), 'extendedKeyUsage=clientAuth\n');
  const issue = (name: string, cn: string, ext: string) => {
    openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${cn}`,
      '-keyout',
      path(`${name}.key`),
      '-out',
      path(`${name}.csr`),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      path(`${name}.csr`),
      '-CA',
      path('ca.pem'),
      '-CAkey',
      path('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      path(ext),
      '-out',
      path(`${name}.pem`),
    );
  };
  issue('server', 'localhost', 'server.ext');
  issue('server2', 'localhost', 'server.ext');
  issue('client', 'caretkv test client', 'client.ext');
  return {
    dir,
    ca: path('ca.pem'),
    serverCert: path('server.pem'),
    serverKey: path('server.key'),
    clientCert: path('client.pem'),
    clientKey: path('client.key'),
    serverCert2: path('server2.pem'),
    serverKey2: path('server2.key'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
