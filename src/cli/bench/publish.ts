/**
 * `caretkv bench --actions publish`: pub/sub fan-out. `publishers` connections publish on one
 * channel in a closed loop (`pipeline` PUBLISH requests in flight each) to `subscribers`
 * connections subscribed to it. Each message carries its send time, so a subscriber measures
 * publish-to-delivery latency into the same HDR histogram as the request benchmark.
 *
 * Everything runs in this thread on purpose: send and receive stamps come from one
 * `performance.now()` clock. What a publisher writes in one go shares one stamp, and what a
 * subscriber reads in one go shares one receive stamp (clock reads per read, not per message).
 *
 * After the measured window, publishing stops and the run waits until every delivery the server
 * reported (the sum of PUBLISH results) has arrived, so the delivered count is exact. Pushes the
 * server dropped for a slow subscriber are counted from its `gap` events, never waited for.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Histogram } from 'hdr-histogram-js';
import { BenchError, HISTOGRAM_MAX_US, newHistogram } from './load.js';

export const PUBLISH_CHANNEL = 'bench^fanout';

export interface PublishBenchOptions {
  readonly host: string;
  readonly port: number;
  readonly publishers: number;
  readonly subscribers: number;
  readonly pipeline: number;
  /** Exactly one of `durationSeconds` and `requests` (measured publishes) is set. */
  readonly durationSeconds: number | null;
  readonly requests: number | null;
  readonly warmupSeconds: number;
  /** Bytes of padding in each message besides its timestamp. */
  readonly valueSize: number;
  readonly timeoutSeconds: number;
}

/** The `--json` output of a publish run; field names are stable (add, do not rename). */
export interface PublishBenchReport {
  mode: 'publish';
  target: 'caretkv';
  host: string;
  port: number;
  channel: string;
  publishers: number;
  subscribers: number;
  pipeline: number;
  valueSize: number;
  warmupSeconds: number;
  /** Measured PUBLISH requests answered (errors included). */
  publishes: number;
  publishesPerSec: number;
  /** Measured messages that reached a subscriber. */
  delivered: number;
  deliveredPerSec: number;
  /** Pushes the server dropped for slow subscribers (from their gap events), whole run. */
  dropped: number;
  durationSeconds: number;
  /** Publish-to-delivery, milliseconds. */
  latencyMs: { avg: number; p50: number; p90: number; p99: number; p999: number; max: number };
  errors: { total: number; byCode: Record<string, number> };
  generator: { cpuPercent: number; cores: number };
  stoppedEarly: boolean;
}

export interface PublishRunHooks {
  signal?: AbortSignal;
  onProgress?: (progress: { elapsedSeconds: number; delivered: number }) => void;
}

const MESSAGE_MARK = '"message":{"t":';

/** Lines of a stream, without a copy per line when a chunk holds whole lines. */
class LineReader {
  #rest = '';
  feed(chunk: string, onLine: (line: string) => void): void {
    let data = this.#rest === '' ? chunk : this.#rest + chunk;
    let start = 0;
    for (let nl = data.indexOf('\n'); nl !== -1; nl = data.indexOf('\n', start)) {
      onLine(data.slice(start, nl));
      start = nl + 1;
    }
    data = data.slice(start);
    this.#rest = data;
  }
}

export async function runPublishBench(
  options: PublishBenchOptions,
  hooks: PublishRunHooks = {},
  cores = 1,
): Promise<PublishBenchReport> {
  const { host, port, pipeline, timeoutSeconds } = options;
  const timeoutMs = timeoutSeconds * 1000;
  const histogram: Histogram = newHistogram();
  const errors = new Map<string, number>();
  const sockets: net.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  const padding = JSON.stringify('x'.repeat(options.valueSize));
  const head = `{"action":"PUBLISH","channel":"${PUBLISH_CHANNEL}","message":{"t":`;
  const tail = `,"p":${padding}}}\n`;

  let failure: BenchError | null = null;
  let wake: (() => void) | null = null;
  const fail = (message: string) => {
    failure ??= new BenchError(message);
    wake?.();
  };
  /** Resolves when `done()` holds (re-checked on every event), or rejects on failure / stall. */
  const until = (done: () => boolean, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      let lastProgress = performance.now();
      let seen = progressTick;
      const check = () => {
        if (failure) return finish(failure);
        if (done()) return finish();
        if (progressTick !== seen) {
          seen = progressTick;
          lastProgress = performance.now();
        } else if (performance.now() - lastProgress > timeoutMs) {
          return finish(new BenchError(`no progress for ${timeoutSeconds} s while ${what}; aborted`));
        }
      };
      const interval = setInterval(check, 50);
      const finish = (err?: Error) => {
        clearInterval(interval);
        wake = null;
        if (err) reject(err);
        else resolve();
      };
      wake = check;
      check();
    });

  let progressTick = 0;
  let measureFrom = Number.POSITIVE_INFINITY;
  let measuring = false;
  let sending = true;
  let stoppedEarly = false;

  // Counters.
  let measuredPublishes = 0;
  let expected = 0; // deliveries the server reported, whole run
  let received = 0; // message pushes received, whole run
  let measuredDelivered = 0;
  let dropped = 0;
  let lastDeliveryAt = 0;
  let subscribed = 0;

  const open = (onData: (chunk: string) => void): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true });
      sockets.push(socket);
      socket.setEncoding('utf8');
      socket.once('connect', () => resolve(socket));
      socket.on('data', onData);
      socket.on('error', (err) => {
        const text = `${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`;
        reject(new BenchError(`cannot connect to ${text}`));
        fail(`connection to ${text} failed mid-run`);
      });
      socket.on('close', () => {
        if (sending || received < expected) fail(`the server closed a connection mid-run (${host}:${port})`);
      });
    });

  try {
    // Subscribers first, each confirmed, so that every publish reaches all of them.
    await Promise.all(
      Array.from({ length: options.subscribers }, async () => {
        const reader = new LineReader();
        let confirmed = false;
        const socket = await open((chunk) => {
          const now = performance.now() * 1000;
          progressTick++;
          reader.feed(chunk, (line) => {
            const at = line.indexOf(MESSAGE_MARK);
            if (at !== -1) {
              received++;
              const t = Number.parseFloat(
                line.slice(at + MESSAGE_MARK.length, line.indexOf(',', at + MESSAGE_MARK.length)),
              );
              if (t >= measureFrom) {
                measuredDelivered++;
                lastDeliveryAt = now;
                histogram.recordValue(Math.min(HISTOGRAM_MAX_US, Math.max(1, Math.round(now - t))));
              }
            } else if (line.startsWith('{"event":"gap"')) {
              dropped += (JSON.parse(line) as { dropped: number }).dropped;
            } else if (!confirmed && line.includes('"ok":')) {
              confirmed = true;
              const reply = JSON.parse(line) as { ok: boolean; error?: { code: string; message: string } };
              if (!reply.ok) fail(`SUBSCRIBE refused: ${reply.error?.code} ${reply.error?.message}`);
              else subscribed++;
              wake?.();
            }
          });
          wake?.();
        });
        socket.write(`{"action":"SUBSCRIBE","channels":["${PUBLISH_CHANNEL}"]}\n`);
      }),
    );
    await until(() => subscribed === options.subscribers, 'subscribing');

    const quotas =
      options.requests === null
        ? null
        : Array.from(
            { length: options.publishers },
            (_, i) =>
              Math.floor(options.requests! / options.publishers) +
              (i < options.requests! % options.publishers ? 1 : 0),
          );
    let idle = 0;
    const publishers = await Promise.all(
      Array.from({ length: options.publishers }, async (_, index) => {
        const reader = new LineReader();
        const state = { inflight: 0, measuredSent: 0, quota: quotas?.[index] ?? Number.POSITIVE_INFINITY };
        let socket!: net.Socket;
        const send = (n: number) => {
          let out = '';
          const t = performance.now() * 1000;
          for (let i = 0; i < n; i++) {
            if (!sending) break;
            if (measuring) {
              if (state.measuredSent >= state.quota) break;
              state.measuredSent++;
            }
            out += `${head}${t}${tail}`;
            state.inflight++;
          }
          if (out !== '') socket.write(out);
          if (state.inflight === 0) {
            idle++;
            wake?.();
          }
        };
        socket = await open((chunk) => {
          progressTick++;
          let answered = 0;
          reader.feed(chunk, (line) => {
            answered++;
            if (line.startsWith('{"ok":true,"result":')) {
              expected += Number(line.slice(20, -1));
            } else {
              const reply = JSON.parse(line) as { ok: boolean; result?: number; error?: { code: string } };
              if (reply.ok) expected += reply.result ?? 0;
              else {
                const code = reply.error?.code ?? 'UNKNOWN';
                errors.set(code, (errors.get(code) ?? 0) + 1);
              }
            }
          });
          state.inflight -= answered;
          if (measuring) measuredPublishes += answered;
          send(answered);
          wake?.();
        });
        return { start: () => send(pipeline) };
      }),
    );

    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const startMeasuring = () => {
      measuring = true;
      measureFrom = performance.now() * 1000;
    };
    if (options.warmupSeconds > 0) {
      timers.push(setTimeout(startMeasuring, options.warmupSeconds * 1000));
    } else startMeasuring();
    const stop = () => {
      sending = false;
      wake?.();
    };
    if (options.durationSeconds !== null) {
      timers.push(setTimeout(stop, (options.warmupSeconds + options.durationSeconds) * 1000));
    }
    const onAbort = () => {
      stoppedEarly = sending;
      stop();
    };
    hooks.signal?.addEventListener('abort', onAbort, { once: true });
    if (hooks.onProgress) {
      const onProgress = hooks.onProgress;
      timers.push(
        setInterval(() => {
          if (measuring) {
            onProgress({
              elapsedSeconds: (performance.now() - measureFrom / 1000) / 1000,
              delivered: measuredDelivered,
            });
          }
        }, 1000),
      );
    }
    for (const p of publishers) p.start();
    try {
      // Publishers go idle when stopped (duration) or out of quota (requests): then all answered.
      await until(() => idle >= options.publishers, 'publishing');
      const sendEnd = performance.now() * 1000;
      await until(() => received >= expected, 'waiting for deliveries');
      const cpu = process.cpuUsage(cpu0);
      const wallMs = performance.now() - start;
      const windowMs = Math.max(sendEnd, lastDeliveryAt) / 1000 - measureFrom / 1000;
      return report(options, {
        histogram,
        errors,
        publishes: measuredPublishes,
        delivered: measuredDelivered,
        dropped,
        windowMs: windowMs > 0 && Number.isFinite(windowMs) ? windowMs : 0,
        cpuPercent: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
        cores,
        stoppedEarly,
      });
    } finally {
      hooks.signal?.removeEventListener('abort', onAbort);
    }
  } finally {
    sending = false;
    expected = 0;
    for (const t of timers) clearTimeout(t);
    for (const s of sockets) s.destroy();
  }
}

const round = (value: number, digits: number): number => {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
};

function report(
  options: PublishBenchOptions,
  r: {
    histogram: Histogram;
    errors: Map<string, number>;
    publishes: number;
    delivered: number;
    dropped: number;
    windowMs: number;
    cpuPercent: number;
    cores: number;
    stoppedEarly: boolean;
  },
): PublishBenchReport {
  const h = r.histogram;
  const empty = h.totalCount === 0;
  const ms = (us: number) => round(us / 1000, 3);
  const at = (p: number) => (empty ? 0 : ms(h.getValueAtPercentile(p)));
  const byCode = Object.fromEntries([...r.errors].sort(([a], [b]) => a.localeCompare(b)));
  const seconds = r.windowMs / 1000;
  return {
    mode: 'publish',
    target: 'caretkv',
    host: options.host,
    port: options.port,
    channel: PUBLISH_CHANNEL,
    publishers: options.publishers,
    subscribers: options.subscribers,
    pipeline: options.pipeline,
    valueSize: options.valueSize,
    warmupSeconds: options.warmupSeconds,
    publishes: r.publishes,
    publishesPerSec: seconds > 0 ? Math.round(r.publishes / seconds) : 0,
    delivered: r.delivered,
    deliveredPerSec: seconds > 0 ? Math.round(r.delivered / seconds) : 0,
    dropped: r.dropped,
    durationSeconds: round(seconds, 3),
    latencyMs: {
      avg: empty ? 0 : ms(h.mean),
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max: empty ? 0 : ms(h.maxValue),
    },
    errors: { total: [...r.errors.values()].reduce((a, b) => a + b, 0), byCode },
    generator: { cpuPercent: round(r.cpuPercent, 1), cores: r.cores },
    stoppedEarly: r.stoppedEarly,
  };
}

const thousands = (n: number): string => Math.round(n).toLocaleString('en-US');

/** The human-readable table for a publish run. */
export function formatPublishReport(report: PublishBenchReport): string {
  const l = report.latencyMs;
  const rows: [string, string][] = [
    ['target', `caretkv ${report.host}:${report.port}, channel ${report.channel}`],
    [
      'load',
      `${report.publishers} publisher(s) x pipeline ${report.pipeline} -> ${report.subscribers} subscriber(s), ${report.valueSize}-byte padding`,
    ],
    [
      'publishes',
      `${thousands(report.publishes)} in ${report.durationSeconds.toFixed(2)} s (${thousands(report.publishesPerSec)}/s)${report.stoppedEarly ? ' (stopped early)' : ''}`,
    ],
    ['delivered', `${thousands(report.delivered)} (${thousands(report.deliveredPerSec)} messages/s)`],
    ['latency ms', 'avg       p50       p90       p99       p99.9     max  (publish to delivery)'],
    [
      '',
      [l.avg, l.p50, l.p90, l.p99, l.p999, l.max]
        .map((v) => v.toFixed(3).padEnd(9))
        .join(' ')
        .trimEnd(),
    ],
    ['dropped', `${thousands(report.dropped)} (slow subscribers, from gap events)`],
    [
      'errors',
      report.errors.total === 0
        ? '0'
        : `${thousands(report.errors.total)} (${Object.entries(report.errors.byCode)
            .map(([code, n]) => `${code} ${thousands(n)}`)
            .join(', ')})`,
    ],
    [
      'generator',
      `${report.generator.cpuPercent.toFixed(0)}% CPU of one core (${report.generator.cores} cores)`,
    ],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  const lines = rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`);
  if ((report.errors.byCode.RATE_LIMITED ?? 0) > 0) {
    lines.push(
      '',
      '  note: RATE_LIMITED is the server limiting publishes per connection (--max-publish-rate,',
      '  default 100000/s); start it with --max-publish-rate 0, or add --publishers.',
    );
  }
  return `${lines.join('\n')}\n`;
}
