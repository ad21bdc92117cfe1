/**
 * Loads a dataset into a server over its own protocol, pipelined over a few connections, and
 * checks every reply: the memory figures are only worth something if every key really went in.
 *
 * Dataset (issue 5, target 4): 1,000 namespaces x 1,000 keys, 16-byte key paths
 * (`ns0042^k00017345`), 32-byte string values.
 */
import net from 'node:net';

export const MEMORY_NAMESPACES = 1000;
export const MEMORY_KEYS = 1_000_000;

export function memoryKey(i: number): string {
  return `ns${String(i % MEMORY_NAMESPACES).padStart(4, '0')}^k${String(i).padStart(8, '0')}`;
}

export function memoryValue(i: number): string {
  return `v${i.toString(36).padStart(31, '0')}`;
}

type Protocol = 'caretkv' | 'redis';

function encode(protocol: Protocol, i: number, ttlMs: number | undefined): string {
  const key = memoryKey(i);
  const value = memoryValue(i);
  if (protocol === 'caretkv') {
    const ttl = ttlMs === undefined ? '' : `,"ttl":${ttlMs}`;
    return `{"action":"SET","key":"${key}","value":"${value}"${ttl}}\n`;
  }
  if (ttlMs === undefined)
    return `*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${value.length}\r\n${value}\r\n`;
  const ms = String(ttlMs);
  return `*5\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${value.length}\r\n${value}\r\n$2\r\nPX\r\n$${ms.length}\r\n${ms}\r\n`;
}

/** The reply every SET must get; anything else fails the load. */
const EXPECTED: Record<Protocol, string> = {
  caretkv: '{"ok":true,"result":true}\n',
  redis: '+OK\r\n',
};

const BATCH = 500;

/** One connection's share: keys `from`, `from + step`, ... below `count`, `BATCH` in flight. */
function fillOne(
  protocol: Protocol,
  port: number,
  from: number,
  step: number,
  count: number,
  ttlMs: number | undefined,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const expected = EXPECTED[protocol];
    let next = from;
    let outstanding = 0;
    let acked = 0;
    let pending = '';
    const send = (): void => {
      let out = '';
      while (outstanding < BATCH && next < count) {
        out += encode(protocol, next, ttlMs);
        next += step;
        outstanding++;
      }
      if (out !== '') socket.write(out);
      else if (outstanding === 0) {
        socket.end();
        resolve(acked);
      }
    };
    socket.setNoDelay(true);
    socket.once('error', reject);
    socket.once('connect', send);
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      let replies = 0;
      let at = 0;
      while (pending.startsWith(expected, at)) {
        at += expected.length;
        replies++;
      }
      pending = pending.slice(at);
      if (pending.length >= expected.length) {
        socket.destroy();
        reject(new Error(`unexpected ${protocol} reply: ${pending.slice(0, 200)}`));
        return;
      }
      acked += replies;
      outstanding -= replies;
      // Refill once half the window came back: fewer, larger writes.
      if (outstanding <= BATCH / 2) send();
    });
  });
}

/** Loads `count` keys of the memory dataset; resolves with how many SETs were acknowledged. */
export async function fill(
  protocol: Protocol,
  port: number,
  count = MEMORY_KEYS,
  ttlMs?: number,
  conns = 4,
): Promise<number> {
  const shares = await Promise.all(
    Array.from({ length: conns }, (_, c) => fillOne(protocol, port, c, conns, count, ttlMs)),
  );
  return shares.reduce((a, b) => a + b, 0);
}
