import type { EventEmitter } from 'node:events';
import net from 'node:net';

/** Poll `condition` until it holds; fail with `message` after `timeoutMs`. Never a fixed sleep. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 10_000, intervalMs = 10, message = 'condition' } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Wait until `progress()` stops changing for `quietMs` (or `done()` holds): used to let a
 * backpressured transfer reach its stall point before asserting that it stalled.
 */
export async function waitForStall(
  progress: () => number,
  {
    quietMs = 300,
    timeoutMs = 20_000,
    done = () => false,
  }: { quietMs?: number; timeoutMs?: number; done?: () => boolean } = {},
): Promise<void> {
  let last = progress();
  let since = Date.now();
  await waitFor(
    () => {
      const now = progress();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return done() || Date.now() - since >= quietMs;
    },
    { timeoutMs, message: 'the transfer to stall' },
  );
}

/** Resolve with the event's arguments; reject on 'error' (unless it is the awaited event) or timeout. */
export function once<T extends unknown[] = unknown[]>(
  emitter: EventEmitter,
  event: string,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    const onEvent = (...args: unknown[]) => {
      cleanup();
      resolve(args as T);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      clearTimeout(timer);
      emitter.off(event, onEvent);
      if (event !== 'error') emitter.off('error', onError);
    };
    emitter.on(event, onEvent);
    if (event !== 'error') emitter.on('error', onError);
  });
}

/** Every socket a test opened, so `destroyAllSockets()` can clean up after a failed assertion. */
const openSockets = new Set<net.Socket>();

/** Connect a TCP client and wait until it is connected. */
export async function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  const socket = net.connect({ port, host });
  openSockets.add(socket);
  socket.once('close', () => openSockets.delete(socket));
  // Tests that care await errors through once()/readToEnd(); a reset seen after the test's point
  // (a server killed in cleanup) must not become an uncaught exception in the test runner.
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

export function destroyAllSockets(): void {
  for (const socket of openSockets) socket.destroy();
  openSockets.clear();
}

/** Everything the peer sends until EOF (resolves on 'end'; errors reject). */
export function readToEnd(socket: net.Socket, timeoutMs = 10_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const onData = (chunk: Buffer) => chunks.push(chunk);
  socket.on('data', onData);
  const ended = once(socket, 'end', timeoutMs);
  // A 'data' listener alone does not restart a socket that was paused explicitly (e.g. by readBytes).
  socket.resume();
  return ended.then(
    () => {
      socket.off('data', onData);
      return Buffer.concat(chunks);
    },
    (err) => {
      socket.off('data', onData);
      throw err;
    },
  );
}

/** Read exactly `n` bytes (the socket must be flowing only through this call). */
export function readBytes(socket: net.Socket, n: number, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const timer = setTimeout(() => finish(new Error(`timed out: got ${received} of ${n} bytes`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= n) finish();
    };
    const onEnd = () => finish(new Error(`EOF after ${received} of ${n} bytes`));
    const finish = (err?: Error) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', finish);
      socket.pause();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', finish);
    socket.resume();
  });
}

/** Write, then read back exactly as many bytes: one echo round trip. */
export async function roundTrip(socket: net.Socket, data: Buffer | string): Promise<Buffer> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const reply = readBytes(socket, bytes.length);
  socket.write(bytes);
  return reply;
}

/** True if `port` can be bound right now (it is free, and nothing lingers on it). */
export async function canBind(port: number, host = '127.0.0.1'): Promise<boolean> {
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host }, resolve);
    });
    return true;
  } catch {
    return false;
  } finally {
    await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  }
}
