/**
 * The process around a server: run it until SIGINT/SIGTERM, shut down gracefully (a second signal
 * exits at once), and the CliError every command throws for mistakes the user can fix.
 */
import type { Config } from '../config.js';
import { createLogger } from '../log.js';
import { createServer } from '../server.js';
import { LogError } from '../store/durable/manifest.js';
import type { HandlerFactory } from '../transport/types.js';

/** A failure the user can fix: printed as one line on stderr, no stack, with this exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Exit codes for a second signal during shutdown: the shell convention 128 + signal number. */
const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

const LISTEN_HINTS: Record<string, string> = {
  EADDRINUSE: 'address already in use (is another server running? choose another --port)',
  EACCES: 'permission denied (ports below 1024 need privileges; choose another --port)',
  EADDRNOTAVAIL: 'address not available on this machine (check --host)',
  ENOTFOUND: 'host name not found (check --host)',
};

/**
 * Run a server until SIGINT/SIGTERM: the first signal shuts down gracefully and exits 0 once
 * `close()` resolves; a second signal during shutdown exits at once with 128 + signal number.
 */
export async function runServer(
  config: Config,
  handler?: HandlerFactory,
  reloadConfig?: () => Config,
): Promise<void> {
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  let server: ReturnType<typeof createServer>;
  try {
    server = createServer(config, {
      logger,
      ...(handler && { handler: () => handler }),
      ...(reloadConfig && { reloadConfig }),
    });
  } catch (err) {
    // The data directory is the one thing opened before listening: damaged, or not usable.
    if (err instanceof LogError) throw new CliError(`cannot start on --data-dir: ${err.message}`, 1);
    const code = (err as NodeJS.ErrnoException).code;
    if (config.dataDir !== undefined && code !== undefined) {
      throw new CliError(`cannot use --data-dir ${config.dataDir}: ${(err as Error).message}`, 1);
    }
    throw err;
  }

  try {
    await server.listen();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const hint = LISTEN_HINTS[code] ?? (err as Error).message;
    throw new CliError(`cannot listen on ${config.host}:${config.port}: ${hint}`, 1);
  }

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(SIGNAL_EXIT[signal] ?? 1);
    }
    stopping = true;
    logger.info({ signal, grace: config.shutdownGrace }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.fatal({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // SIGHUP re-reads --config (users, permissions, TLS certificates), as CONFIG RELOAD does. Without
  // a file it is ignored rather than left to its default action (terminating the server).
  process.on('SIGHUP', () => {
    if (!reloadConfig) {
      logger.warn('SIGHUP ignored: the server was started without --config');
      return;
    }
    server.reload().catch((err: unknown) => {
      logger.error(
        { reason: (err as Error).message },
        'reload failed; the running configuration stays in force',
      );
    });
  });
}
