/**
 * The cluster benchmark's load generator: one closed-loop generator that drives either caretkv
 * nodes (NDJSON lines over TCP) or a Redis Cluster directly (RESP over TCP, each key sent to the
 * master that owns its slot), with the same clients, pipeline depth, keys and values, so that the
 * two differ only in what answers.
 *
 * A client keeps `pipeline` requests in flight: when replies arrive it sends as many new ones, in
 * one write per socket. A caretkv client is one socket to one node (clients are spread over the
 * nodes round-robin); a Redis client is one socket per master (as ioredis's Cluster holds) and its
 * `pipeline` requests are spread over them by key, so its depth counts the same requests.
 *
 * Keys: KEYSPACE keys over NAMESPACES top-level namespaces (`t042^k000123`), so caretkv's
 * placement (a top-level namespace is one hash slot) spreads them over every master. Direct Redis
 * uses the same name under the same hash tag (`b:{t042}^k000123`): the same slots, the same spread.
 * Values: one 32-byte ASCII string (no CR or LF: the RESP reader relies on it).
 *
 * Raw sockets and not ioredis on the Redis side: ioredis costs several µs of CPU per command in
 * the client, and on a 2-core machine the generator's CPU is taken from the servers; raw RESP
 * costs what raw NDJSON costs.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { build, type Histogram } from 'hdr-histogram-js';

export const KEYSPACE = 100_000;
export const NAMESPACES = 256;
export const VALUE = 'v'.repeat(32);

export function namespaceOf(i: number): string {
  return `t${String(i % NAMESPACES).padStart(3, '0')}`;
}
export function caretKey(i: number): string {
  return `${namespaceOf(i)}^k${String(i).padStart(6, '0')}`;
}
export function redisKey(i: number): string {
  return `b:{${namespaceOf(i)}}^k${String(i).padStart(6, '0')}`;
}

// ---- Redis Cluster slots ------------------------------------------------------------------------

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** Redis Cluster's slot of a key (CRC16/XMODEM of the hash tag, or of the key, mod 16384). */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  const hashed = close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(hashed))
    crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc & 0x3fff;
}

// ---- targets --------------------------------------------------------------------------------------

export type Mix = 'set' | 'get';

export type LoadTarget =
  | { readonly kind: 'caretkv'; readonly ports: readonly number[] }
  /** `slots[s]` is the index in `ports` of the master that owns slot s (from CLUSTER SLOTS). */
  | { readonly kind: 'redis'; readonly ports: readonly number[]; readonly slots: Uint8Array };

export interface LoadSpec {
  readonly conns: number;
  readonly pipeline: number;
  readonly mix: Mix;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Called when the measured window opens and closes (the caller samples CPU there). */
  readonly onWindow?: (edge: 'start' | 'end') => void;
}

export interface LoadResult {
  /** Replies received inside the measured window. */
  readonly requests: number;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly firstError: string | null;
}

/** A FIFO of send times, one per request in flight on a socket (replies come back in order). */
class SendTimes {
  private times: number[] = [];
  private head = 0;
  push(t: number): void {
    this.times.push(t);
  }
  shift(): number {
    const t = this.times[this.head++]!;
    if (this.head === this.times.length) {
      this.times = [];
      this.head = 0;
    } else if (this.head > 4096) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
    return t;
  }
}

interface Run {
  measuring: boolean;
  running: boolean;
  requests: number;
  errors: number;
  firstError: string | null;
  inflight: number;
  lastReply: number;
  histogram: Histogram;
}

function encodeCaret(mix: Mix, i: number): string {
  return mix === 'set'
    ? `{"action":"SET","key":"${caretKey(i)}","value":"${VALUE}"}\n`
    : `{"action":"GET","key":"${caretKey(i)}"}\n`;
}

/** Each key's RESP bulk string and owning master, built once per run. */
function redisKeys(slots: Uint8Array): { bulk: string[]; master: Uint8Array } {
  const bulk: string[] = new Array(KEYSPACE);
  const master = new Uint8Array(KEYSPACE);
  for (let i = 0; i < KEYSPACE; i++) {
    const key = redisKey(i);
    bulk[i] = `$${Buffer.byteLength(key)}\r\n${key}\r\n`;
    master[i] = slots[keySlot(key)]!;
  }
  return { bulk, master };
}

const RESP_SET = `*3\r\n$3\r\nSET\r\n`;
const RESP_GET = `*2\r\n$3\r\nGET\r\n`;
const RESP_VALUE = `$${VALUE.length}\r\n${VALUE}\r\n`;

/**
 * One socket's replies: `onReply(error)` per complete reply. caretkv: one line each, an error when
 * it says `"ok":false`. RESP: `+`, `-`, `:` and `$-1` are one line, `$n` is two (our values hold
 * no line breaks).
 */
function replyReader(
  kind: LoadTarget['kind'],
  onReply: (error: string | null) => void,
): (chunk: Buffer) => void {
  let partial = '';
  let bulkPending = false;
  return (chunk) => {
    const text = partial + chunk.toString('latin1');
    let at = 0;
    for (;;) {
      const nl = text.indexOf('\n', at);
      if (nl === -1) break;
      if (kind === 'caretkv') {
        const failed = text.startsWith('{"ok":false', at);
        onReply(failed ? text.slice(at, nl) : null);
      } else if (bulkPending) {
        bulkPending = false;
        onReply(null);
      } else {
        const type = text.charCodeAt(at);
        if (type === 0x24 /* $ */ && text.charCodeAt(at + 1) !== 0x2d /* - */) bulkPending = true;
        else onReply(type === 0x2d /* - */ ? text.slice(at, nl - 1) : null);
      }
      at = nl + 1;
    }
    partial = at === text.length ? '' : text.slice(at);
  };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/**
 * Drives `target` with `spec`: connects every client, runs warm-up then the measured window,
 * stops sending, waits for the requests in flight, closes. Fails when nothing answers for 10 s.
 */
export async function runLoad(target: LoadTarget, spec: LoadSpec): Promise<LoadResult> {
  const run: Run = {
    measuring: false,
    running: true,
    requests: 0,
    errors: 0,
    firstError: null,
    inflight: 0,
    lastReply: performance.now(),
    histogram: build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 60_000_000,
      numberOfSignificantValueDigits: 3,
    }),
  };
  const redis = target.kind === 'redis' ? redisKeys(target.slots) : null;
  const sockets: net.Socket[] = [];
  /** Each client's first `pipeline` requests, sent once every client is connected. */
  const starters: (() => void)[] = [];
  let failure: Error | null = null;
  const nextKey = (): number => Math.floor(Math.random() * KEYSPACE);

  const replied = (sentAt: number, error: string | null): void => {
    run.inflight--;
    const now = performance.now();
    run.lastReply = now;
    if (error !== null) {
      run.errors++;
      run.firstError ??= error;
    }
    if (run.measuring) {
      run.requests++;
      run.histogram.recordValue(Math.max(1, Math.round((now - sentAt) * 1000)));
    }
  };

  for (let c = 0; c < spec.conns; c++) {
    // A client: its sockets (one, or one per master), their FIFOs, and a way to send n requests.
    const ports = target.kind === 'caretkv' ? [target.ports[c % target.ports.length]!] : target.ports;
    const mine = await Promise.all(ports.map(connect));
    sockets.push(...mine);
    const fifos = mine.map(() => new SendTimes());
    const out = mine.map(() => '');
    const send = (n: number): void => {
      const now = performance.now();
      for (let k = 0; k < n; k++) {
        const i = nextKey();
        let s = 0;
        if (redis === null) out[0] += encodeCaret(spec.mix, i);
        else {
          s = redis.master[i]!;
          out[s] += spec.mix === 'set' ? RESP_SET + redis.bulk[i]! + RESP_VALUE : RESP_GET + redis.bulk[i]!;
        }
        fifos[s]!.push(now);
        run.inflight++;
      }
      for (let s = 0; s < mine.length; s++) {
        if (out[s] === '') continue;
        mine[s]!.write(out[s]!);
        out[s] = '';
      }
    };
    mine.forEach((socket, s) => {
      let answered = 0;
      const read = replyReader(target.kind, (error) => {
        replied(fifos[s]!.shift(), error);
        answered++;
      });
      socket.on('data', (chunk: Buffer) => {
        answered = 0;
        read(chunk);
        if (run.running && answered > 0) send(answered);
      });
      socket.on('error', (err) => {
        failure ??= err;
      });
    });
    starters.push(() => send(spec.pipeline));
  }

  const started = performance.now();
  for (const start of starters) start();
  let windowStart = 0;
  let windowEnd = 0;
  await new Promise<void>((resolve, reject) => {
    const watchdog = setInterval(() => {
      if (failure !== null || performance.now() - run.lastReply > 10_000) {
        clearInterval(watchdog);
        reject(failure ?? new Error(`no reply for 10 s (${run.inflight} in flight)`));
      }
    }, 500);
    setTimeout(
      () => {
        spec.onWindow?.('start');
        windowStart = performance.now();
        run.measuring = true;
        setTimeout(() => {
          run.measuring = false;
          windowEnd = performance.now();
          spec.onWindow?.('end');
          run.running = false;
          clearInterval(watchdog);
          resolve();
        }, spec.durationMs);
      },
      Math.max(0, spec.warmupMs - (performance.now() - started)),
    );
  });
  // Let what is in flight come back, so the next run starts on idle servers.
  const drainBy = performance.now() + 5000;
  while (run.inflight > 0 && performance.now() < drainBy) await new Promise((r) => setTimeout(r, 5));
  for (const socket of sockets) socket.destroy();
  const seconds = (windowEnd - windowStart) / 1000;
  return {
    requests: run.requests,
    opsPerSec: run.requests / seconds,
    p50Ms: run.histogram.getValueAtPercentile(50) / 1000,
    p99Ms: run.histogram.getValueAtPercentile(99) / 1000,
    errors: run.errors,
    firstError: run.firstError,
  };
}

/**
 * SETs every key of the keyspace once (unmeasured), `conns` x `window` in flight: GETs then hit
 * (caretkv answers a miss with KEY_NOT_FOUND, which would count as an error).
 */
export async function prefill(target: LoadTarget, conns = 8, window = 64): Promise<void> {
  const redis = target.kind === 'redis' ? redisKeys(target.slots) : null;
  let next = 0;
  let failure: string | null = null;
  await Promise.all(
    Array.from({ length: conns }, async (_, c) => {
      const ports = target.kind === 'caretkv' ? [target.ports[c % target.ports.length]!] : target.ports;
      const mine = await Promise.all(ports.map(connect));
      let inflight = 0;
      await new Promise<void>((resolve, reject) => {
        const send = (): void => {
          const out = mine.map(() => '');
          while (inflight < window && next < KEYSPACE) {
            const i = next++;
            if (redis === null) out[0] += encodeCaret('set', i);
            else out[redis.master[i]!] += RESP_SET + redis.bulk[i]! + RESP_VALUE;
            inflight++;
          }
          out.forEach((text, s) => {
            if (text !== '') mine[s]!.write(text);
          });
          if (inflight === 0) resolve();
        };
        for (const socket of mine) {
          const read = replyReader(target.kind, (error) => {
            inflight--;
            if (error !== null) failure ??= error;
          });
          socket.on('data', (chunk: Buffer) => {
            read(chunk);
            if (failure !== null) reject(new Error(`prefill: ${failure}`));
            else send();
          });
          socket.on('error', reject);
        }
        send();
      });
      for (const socket of mine) socket.destroy();
    }),
  );
}
