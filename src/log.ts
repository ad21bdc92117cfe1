import { createRequire } from 'node:module';
import { type DestinationStream, type Level, type Logger, pino } from 'pino';
import type PinoPretty from 'pino-pretty';
import type { Config } from './config.js';

// pino-pretty (and its dependencies) load only when a pretty logger is asked for: JSON logging is
// the server default, and the import cost every start ~20 ms (docs/benchmarks.md).
const requireLazily = createRequire(import.meta.url);

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: Config['logLevel'];
  format: Config['logFormat'];
  /** Where lines go; stdout by default. Tests pass a stream to capture them. */
  destination?: DestinationStream;
}

/**
 * The process logger: JSON lines to stdout, or human-readable lines through pino-pretty.
 * Both write synchronously so the last lines before exit (the shutdown summary) are never lost,
 * and pretty runs in-process rather than as a worker-thread transport that would outlive `close()`.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination =
    options.destination ??
    (options.format === 'pretty'
      ? (requireLazily('pino-pretty') as typeof PinoPretty)({
          sync: true,
          colorize: process.stdout.isTTY === true,
          destination: 1,
        })
      : pino.destination({ dest: 1, sync: true }));
  return pino({ name: 'caretkv', level: options.level }, destination);
}

export interface LogLimiterOptions {
  /** Lines that may be logged back to back before limiting starts. */
  burst?: number;
  /** Lines per second allowed once the burst is spent. */
  perSecond?: number;
  /** Clock in milliseconds; injectable for tests. */
  now?: () => number;
}

/**
 * A token bucket around a logger, one per connection, so a client sending garbage cannot flood
 * the log: the first `burst` lines pass, then `perSecond`; what is dropped is counted and reported
 * as one `suppressed` line the next time a line passes, and on `flush()` (call it when the
 * connection closes).
 */
export class LogLimiter {
  readonly #log: Logger;
  readonly #burst: number;
  readonly #perMs: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;
  #suppressed = 0;
  #suppressedLevel: Level = 'debug';

  constructor(log: Logger, options: LogLimiterOptions = {}) {
    this.#log = log;
    this.#burst = options.burst ?? 10;
    this.#perMs = (options.perSecond ?? 1) / 1000;
    this.#now = options.now ?? Date.now;
    this.#tokens = this.#burst;
    this.#last = this.#now();
  }

  /** Lines dropped since the last summary. */
  get suppressed(): number {
    return this.#suppressed;
  }

  log(level: Level, obj: object, msg: string): void {
    // A disabled level costs one check and never spends a token.
    if (!this.#log.isLevelEnabled(level)) return;
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#perMs);
    this.#last = now;
    if (this.#tokens < 1) {
      this.#suppressed++;
      this.#suppressedLevel = level;
      return;
    }
    this.#tokens -= 1;
    this.flush();
    this.#log[level](obj, msg);
  }

  /** Report the lines dropped so far, if any. */
  flush(): void {
    if (this.#suppressed === 0) return;
    this.#log[this.#suppressedLevel]({ suppressed: this.#suppressed }, 'suppressed log lines');
    this.#suppressed = 0;
  }
}
