import { type Command, InvalidArgumentError, Option } from 'commander';
import { CliError } from '../process.js';
import {
  type BenchOptions,
  BenchUsageError,
  DEFAULT_PORTS,
  LIMITS,
  parseMix,
  TARGETS,
  type Target,
} from './options.js';
import type { PublishBenchOptions } from './publish.js';

const DEFAULT_DURATION_SECONDS = 10;

function integer(min: number, max: number) {
  return (text: string): number => {
    const value = /^\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}.`);
    }
    return value;
  };
}

function seconds(min: number) {
  return (text: string): number => {
    const value = /^\d+(?:\.\d+)?$/.test(text.trim()) ? Number(text) : Number.NaN;
    if (!Number.isFinite(value) || value < min || value > 86_400) {
      throw new InvalidArgumentError(`must be a number of seconds from ${min} to 86400.`);
    }
    return value;
  };
}

function threads(text: string): number | 'auto' {
  if (text === 'auto') return 'auto';
  return integer(1, LIMITS.threads)(text);
}

interface BenchFlags {
  host: string;
  port?: number;
  target: Target;
  conns: number;
  pipeline: number;
  duration?: number;
  requests?: number;
  warmup: number;
  ratio: string;
  actions?: string;
  keyspace: number;
  valueSize: number;
  threads: number | 'auto';
  timeout: number;
  prefill?: boolean;
  json?: boolean;
  publishers: number;
  subscribers: number;
}

/** `--actions publish` (any case) selects the fan-out benchmark (src/cli/bench/publish.ts). */
function isPublish(flags: BenchFlags): boolean {
  return flags.actions?.trim().toUpperCase() === 'PUBLISH';
}

/** Flags -> one publish run. */
export function publishBenchOptions(flags: BenchFlags): PublishBenchOptions {
  if (flags.target !== 'caretkv') {
    throw new BenchUsageError(
      `--actions publish: pub/sub fan-out needs --target caretkv (got ${flags.target})`,
    );
  }
  const requests = flags.requests ?? null;
  return {
    host: flags.host,
    port: flags.port ?? DEFAULT_PORTS.caretkv,
    publishers: flags.publishers,
    subscribers: flags.subscribers,
    pipeline: flags.pipeline,
    requests,
    durationSeconds: requests === null ? (flags.duration ?? DEFAULT_DURATION_SECONDS) : null,
    warmupSeconds: flags.warmup,
    valueSize: flags.valueSize,
    timeoutSeconds: flags.timeout,
  };
}

/** Flags -> one resolved run; a bad combination is a usage error naming the flag. */
export function benchOptions(flags: BenchFlags): BenchOptions {
  const requests = flags.requests ?? null;
  return {
    target: flags.target,
    host: flags.host,
    port: flags.port ?? DEFAULT_PORTS[flags.target],
    conns: flags.conns,
    pipeline: flags.pipeline,
    requests,
    durationSeconds: requests === null ? (flags.duration ?? DEFAULT_DURATION_SECONDS) : null,
    warmupSeconds: flags.warmup,
    mix: parseMix(flags.actions, flags.ratio),
    keyspace: flags.keyspace,
    valueSize: flags.valueSize,
    threads: flags.threads,
    timeoutSeconds: flags.timeout,
    prefill: flags.prefill === true,
  };
}

/** `caretkv bench`: the load generator (this folder). */
export function registerBench(program: Command): void {
  const bench = program
    .command('bench')
    .description(
      'load generator: closed-loop requests over raw sockets against caretkv, `caretkv echo` or redis',
    )
    .addOption(
      new Option('--target <target>', 'what to drive: caretkv (JSON), echo (transport ceiling), redis (RESP)')
        .choices(TARGETS)
        .default('caretkv'),
    )
    .option('--host <host>', 'server address', '127.0.0.1')
    .option('--port <port>', 'server port (default: 7171, or 6379 for --target redis)', integer(1, 65535))
    .option('--conns <n>', 'connections', integer(1, LIMITS.conns), 50)
    .option('--pipeline <n>', 'requests in flight per connection', integer(1, LIMITS.pipeline), 1)
    .addOption(
      new Option('--duration <seconds>', `measure for this long (default: ${DEFAULT_DURATION_SECONDS})`)
        .argParser(seconds(0.1))
        .conflicts('requests'),
    )
    .addOption(
      new Option('--requests <n>', 'measure exactly this many requests instead of a duration').argParser(
        integer(1, Number.MAX_SAFE_INTEGER),
      ),
    )
    .option('--warmup <seconds>', 'load sent before measuring starts (not counted)', seconds(0), 0)
    .option('--ratio <set:get>', 'SET:GET weights when --actions does not give them', '1:1')
    .option(
      '--actions <list>',
      'comma list of SET, GET, INCR, PING with optional weights, e.g. SET:1,GET:9,INCR (default: SET,GET); or publish alone for pub/sub fan-out',
    )
    .option(
      '--publishers <n>',
      'with --actions publish: publishing connections (--pipeline PUBLISH each in flight)',
      integer(1, LIMITS.conns),
      1,
    )
    .option(
      '--subscribers <n>',
      'with --actions publish: connections subscribed to the channel',
      integer(0, LIMITS.conns),
      10,
    )
    .option(
      '--keyspace <n>',
      'distinct keys (1000 per namespace: bench^d042^k0042137)',
      integer(1, LIMITS.keyspace),
      100_000,
    )
    .option('--value-size <bytes>', 'bytes per SET value', integer(0, LIMITS.valueSize), 32)
    .option(
      '--threads <n|auto>',
      'generator worker threads, each owning a share of the connections',
      threads,
      'auto' as number | 'auto',
    )
    .option('--timeout <seconds>', 'fail when no reply arrives for this long', seconds(0.1), 10)
    .option('--prefill', 'SET every key once before measuring, so GETs hit (not measured)')
    .option('--json', 'print one JSON object (stable field names) instead of the table')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  caretkv bench --duration 10 --conns 50 --pipeline 16\n' +
        '  caretkv bench --target redis --port 6379 --requests 1000000 --json\n' +
        '  caretkv bench --target echo --actions SET,GET,INCR,PING\n' +
        '  caretkv bench --actions publish --publishers 2 --subscribers 50 --pipeline 16\n' +
        '\nWith --actions publish, --value-size pads each message, and the report gives delivered\n' +
        'messages per second and publish-to-delivery latency. The server limits publishes per\n' +
        'connection (--max-publish-rate, default 100000/s; refused ones count as RATE_LIMITED):\n' +
        'start it with --max-publish-rate 0 to measure past that.\n',
    );

  bench.action(async (flags: BenchFlags) => {
    // A usage mistake is commander's kind of error: one line, exit code 2.
    const parse = <T>(options: (f: BenchFlags) => T): T => {
      try {
        return options(flags);
      } catch (err) {
        if (err instanceof BenchUsageError) bench.error(`error: ${err.message}`, { exitCode: 2 });
        throw err;
      }
    };
    if (isPublish(flags)) {
      await runPublish(parse(publishBenchOptions), flags.json === true);
      return;
    }
    const options = parse(benchOptions);

    // Loaded only when bench runs: the generator (hdr-histogram-js, workers) is the heaviest part
    // of the CLI and would otherwise cost every `caretkv serve` ~100 ms of startup (measured,
    // docs/benchmarks.md).
    const [{ formatReport }, { runBench }] = await Promise.all([
      import('./report.js'),
      import('./runner.js'),
    ]);
    await interruptible(
      (signal, onProgress) =>
        runBench(options, {
          signal,
          onProgress:
            onProgress &&
            (({ elapsedSeconds, requests }) => onProgress(elapsedSeconds, requests, 'requests', 'ops/s')),
        }),
      (report) => (flags.json ? `${JSON.stringify(report)}\n` : formatReport(report)),
    );
  });
}

type Progress = (elapsedSeconds: number, count: number, noun: string, unit: string) => void;

/**
 * Runs a benchmark the way both kinds share: a progress line on a terminal, the first Ctrl-C stops
 * it and reports what was measured, a second one leaves at once; the report on stdout, a
 * generator failure as a CliError.
 */
async function interruptible<R>(
  run: (signal: AbortSignal, onProgress: Progress | undefined) => Promise<R>,
  format: (report: R) => string,
): Promise<void> {
  const { BenchError } = await import('./load.js');
  const tty = process.stderr.isTTY === true;
  const stop = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    if (++interrupts > 1) process.exit(130);
    stop.abort();
  };
  const progress: Progress = (elapsedSeconds, count, noun, unit) => {
    const rate = Math.round(count / elapsedSeconds).toLocaleString('en-US');
    process.stderr.write(
      `\r\x1b[K  ${elapsedSeconds.toFixed(0)} s  ${count.toLocaleString('en-US')} ${noun}  ${rate} ${unit}`,
    );
  };
  process.on('SIGINT', onSigint);
  try {
    const report = await run(stop.signal, tty ? progress : undefined);
    if (tty) process.stderr.write('\r\x1b[K');
    process.stdout.write(format(report));
  } catch (err) {
    if (tty) process.stderr.write('\r\x1b[K');
    if (err instanceof BenchError) throw new CliError(err.message, 1);
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** The fan-out run: loaded on demand like the request generator. */
async function runPublish(options: PublishBenchOptions, json: boolean): Promise<void> {
  const [{ formatPublishReport, runPublishBench }, { availableParallelism }] = await Promise.all([
    import('./publish.js'),
    import('node:os'),
  ]);
  await interruptible(
    (signal, onProgress) =>
      runPublishBench(
        options,
        {
          signal,
          onProgress:
            onProgress &&
            (({ elapsedSeconds, delivered }) =>
              onProgress(elapsedSeconds, delivered, 'delivered', 'messages/s')),
        },
        availableParallelism(),
      ),
    (report) => (json ? `${JSON.stringify(report)}\n` : formatPublishReport(report)),
  );
}
