import { pino } from 'pino';
import { type ConfigKey, loadConfig } from '../../src/config.js';
import type { Logger } from '../../src/log.js';
import { type CaretServer, createServer } from '../../src/server.js';
import type { Store } from '../../src/store/store.js';
import { echoHandler } from '../../src/transport/echo.js';
import type { HandlerFactory } from '../../src/transport/types.js';

export type LogRecord = Record<string, unknown> & { level: number; msg: string };

/** A pino logger whose JSON lines land in `records`, for asserting on what was logged. */
export function captureLogger(level = 'debug'): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  // pino calls write() synchronously with one complete JSON line per record.
  const destination = { write: (line: string) => void records.push(JSON.parse(line)) };
  return { logger: pino({ level }, destination), records };
}

export interface TestServer {
  server: CaretServer;
  host: string;
  port: number;
  /** Every log line the server wrote (debug and up). */
  logs: LogRecord[];
  close: CaretServer['close'];
}

/**
 * Start an in-process server on an ephemeral port. `settings` are config values as a flag would
 * give them (`{ idleTimeout: 0.2, maxConnections: 2 }`). Like `caretkv serve`, it speaks the JSON
 * protocol over a fresh in-memory store unless given a raw `handler` (or a `store`).
 */
export async function startServer(
  settings: Partial<Record<ConfigKey, unknown>> = {},
  options: { handler?: HandlerFactory; store?: Store; logLevel?: string } = {},
): Promise<TestServer> {
  const config = loadConfig({ flags: { port: 0, ...settings } });
  const { logger, records } = captureLogger(options.logLevel ?? 'debug');
  const server = createServer(config, {
    logger,
    ...(options.handler && { handler: () => options.handler! }),
    ...(options.store && { store: options.store }),
  });
  const { host, port } = await server.listen();
  return { server, host, port, logs: records, close: () => server.close() };
}

/** An in-process `caretkv echo`: the raw transport with the echo handler. */
export function startEchoServer(
  settings: Partial<Record<ConfigKey, unknown>> = {},
  options: { logLevel?: string } = {},
): Promise<TestServer> {
  return startServer(settings, { ...options, handler: echoHandler });
}
