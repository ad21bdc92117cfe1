/**
 * `caretkv cli`: a redis-cli for caretkv, in three modes chosen the way redis-cli chooses them.
 *
 *   caretkv cli GET users^42^name        one-shot: print the result, exit 0; or the error, exit 1
 *   caretkv cli < commands.txt            piped: one command per line, replies in order, one line
 *                                         each; exit 1 if any command failed
 *   caretkv cli                           interactive, when stdin is a terminal
 *
 * The server is `--host/--port`, `--url caretkv://host:port`, or a URL as the first argument.
 * The grammar is in repl/parse.ts, printing in repl/format.ts.
 */
import { readFileSync } from 'node:fs';
import readline from 'node:readline';
import { type Command, InvalidArgumentError } from 'commander';
import {
  type CaretClient,
  CaretError,
  type ClientOptions,
  connect,
  DEFAULT_HOST,
  DEFAULT_PORT,
} from '../client/index.js';
import { resolveOptions } from '../client/options.js';
import { colorWanted, MACHINE, type Style } from './repl/format.js';
import { historyPath } from './repl/history.js';
import { runInteractive } from './repl/interactive.js';
import { describeError, execute, runLines, streamPushes } from './repl/session.js';
import { CliError } from './run.js';

/** Exit status when a command failed (one-shot) or any piped command failed; also for no connection. */
export const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

interface CliFlags {
  host?: string;
  port?: number;
  url?: string;
  user?: string;
  password?: string;
  tls?: boolean;
  tlsCa?: string;
  timeout: number;
  json?: boolean;
  color: boolean;
}

/** Read the password from here rather than a flag that `ps` shows to every user (redis-cli's REDISCLI_AUTH). */
export const PASSWORD_ENV = 'CARETKV_PASSWORD';

function port(text: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new InvalidArgumentError('must be a port number from 1 to 65535.');
  }
  return value;
}

function milliseconds(text: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value)) throw new InvalidArgumentError('must be a whole number of milliseconds.');
  return value;
}

const EXAMPLES = `
Examples:
  caretkv cli                                   interactive shell (history in ~/.caretkv_history)
  caretkv cli SET users^42^name "Ada Lovelace"  one-shot
  caretkv cli SET n 5 ttl=1000
  caretkv cli --port 7272 INCR n by=2
  caretkv cli caretkv://10.0.0.5:7171 KEYS users
  caretkv cli < commands.txt                    one command per line; results as JSON lines
  echo '{"action":"GET","key":"n"}' | caretkv cli

Output: on a terminal, results are laid out and coloured (NO_COLOR turns colour off); otherwise
each result is one line of JSON and each error one line "(error) CODE message".
Exit status: 0 when every command succeeded, 1 when one failed or the server is unreachable,
2 for bad flags. CARETKV_HISTFILE moves the history file ("" or /dev/null: no history).`;

export function registerCli(program: Command): void {
  program
    .command('cli')
    .description('interactive shell, one-shot command or piped commands against a caretkv server')
    .argument(
      '[command...]',
      'an action and its arguments to run once (default: a shell, or commands from stdin when it is not a terminal)',
    )
    .option('--host <host>', `server host (default: ${DEFAULT_HOST})`)
    .option('-p, --port <port>', `server port (default: ${DEFAULT_PORT})`, port)
    .option('-u, --url <url>', 'server as caretkv://[user:password@]host:port (caretkvs:// for TLS)')
    .option('--user <name>', 'authenticate as this user (AUTH on every connection)')
    .option(
      '--password <password>',
      `the user's password (visible to other users in ps: prefer ${PASSWORD_ENV})`,
    )
    .option('--tls', 'connect with TLS')
    .option('--tls-ca <file>', 'trust this CA certificate (PEM) for the server certificate (implies --tls)')
    .option('--timeout <ms>', 'how long a command may wait for its reply, 0 for ever', milliseconds, 10_000)
    .option('--json', 'print one line of JSON per result even on a terminal')
    .option('--no-color', 'no colours (as NO_COLOR=1)')
    // Arguments such as `-5` (INCR n -5) are values, not flags.
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText('after', EXAMPLES)
    .action(async (words: string[], flags: CliFlags) => {
      process.exitCode = await runCli(words, flags);
    });
}

async function runCli(words: string[], flags: CliFlags): Promise<number> {
  let url = flags.url;
  if (/^caretkvs?:\/\//.test(words[0] ?? '')) url = words.shift();
  const unknownFlag = words[0]?.startsWith('--') ? words[0] : undefined;
  if (unknownFlag !== undefined) {
    throw new CliError(
      `unknown option '${unknownFlag}' (put -- before a command whose first word starts with -)`,
      EXIT_USAGE,
    );
  }
  const options = clientOptions(url, flags);
  const address = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`;

  const interactive = words.length === 0 && process.stdin.isTTY === true;
  const style: Style =
    flags.json === true
      ? MACHINE
      : {
          color: flags.color && colorWanted(process.stdout, process.env),
          pretty: process.stdout.isTTY === true,
        };

  const client = await open(url, options.overrides, address);
  try {
    if (interactive) {
      await runInteractive({
        client,
        input: process.stdin,
        output: process.stdout,
        style,
        address,
        historyFile: historyPath(process.env),
        warn: (message) => process.stderr.write(`caretkv cli: ${message}\n`),
      });
      return 0;
    }
    if (words.length > 0) return await oneShot(client, words, style);
    return await piped(client, style);
  } finally {
    client.destroy();
  }
}

/** Flags over the URL over the defaults; the resolved host and port name the server in messages. */
function clientOptions(
  url: string | undefined,
  flags: CliFlags,
): { host: string; port: number; overrides: ClientOptions } {
  const overrides: ClientOptions = { requestTimeout: flags.timeout, connectTimeout: flags.timeout || 10_000 };
  if (flags.host !== undefined) overrides.host = flags.host;
  if (flags.port !== undefined) overrides.port = flags.port;
  const password = flags.password ?? (process.env[PASSWORD_ENV] || undefined);
  if (flags.password !== undefined && flags.user === undefined) {
    throw new CliError('--password needs --user', EXIT_USAGE);
  }
  if (flags.user !== undefined) {
    if (password === undefined) {
      throw new CliError(`--user needs a password: set ${PASSWORD_ENV} (or pass --password)`, EXIT_USAGE);
    }
    overrides.user = flags.user;
    overrides.password = password;
  }
  if (flags.tlsCa !== undefined) {
    try {
      overrides.tls = { ca: readFileSync(flags.tlsCa) };
    } catch (err) {
      throw new CliError(
        `--tls-ca: cannot read ${flags.tlsCa}: ${(err as NodeJS.ErrnoException).code ?? err}`,
        EXIT_USAGE,
      );
    }
  } else if (flags.tls) {
    overrides.tls = true;
  }
  try {
    const resolved = resolveOptions(url, overrides);
    return { host: resolved.host, port: resolved.port, overrides };
  } catch (err) {
    throw new CliError((err as Error).message.replace(/^caretkv: /, ''), EXIT_USAGE);
  }
}

/** Connect once, failing fast with a line that says what to check; later drops reconnect. */
async function open(
  url: string | undefined,
  overrides: ClientOptions,
  address: string,
): Promise<CaretClient> {
  try {
    return await (url === undefined ? connect(overrides) : connect(url, overrides));
  } catch (err) {
    if (!(err instanceof CaretError)) throw err;
    if (err.code === 'CONNECT_FAILED' || err.code === 'CONNECT_TIMEOUT') {
      const cause = err.cause as (NodeJS.ErrnoException & { code?: string }) | undefined;
      const why =
        cause?.code === 'ECONNREFUSED'
          ? 'connection refused (is `caretkv serve` running there? check --host and --port)'
          : cause?.code === 'ENOTFOUND'
            ? 'host not found (check --host)'
            : err.code === 'CONNECT_TIMEOUT'
              ? 'timed out (check --host and --port, and any firewall between)'
              : cause instanceof CaretError
                ? `${cause.code} ${describeError(cause).message}`
                : describeError(err).message;
      throw new CliError(`cannot connect to ${address}: ${why}`, EXIT_FAILED);
    }
    const { code, message } = describeError(err);
    throw new CliError(`cannot connect to ${address}: ${code} ${message}`, EXIT_FAILED);
  }
}

/**
 * The words as the shell split them, requoted so the grammar sees each as one argument: the shell
 * already took the user's quotes off, and `caretkv cli SET k "Ada Lovelace"` must mean one value.
 * A word that is JSON as it stands (5, true, {"a": 1}, '"5"') keeps its JSON meaning.
 */
export function commandLine(words: readonly string[]): string {
  return words
    .map((word, i) => {
      if (i === 0) return word;
      const named = /^([A-Za-z_$][\w$]*=)(.*)$/s.exec(word);
      return named ? `${named[1]}${requote(named[2]!)}` : requote(word);
    })
    .join(' ');
}

function requote(word: string): string {
  if (word === '') return '""';
  if (/^[^\s"']+$/.test(word)) return word;
  try {
    JSON.parse(word);
    if (word.trim() === word) return word;
  } catch {
    // Not JSON: a string with spaces or quotes in it.
  }
  return JSON.stringify(word);
}

async function oneShot(client: CaretClient, words: readonly string[], style: Style): Promise<number> {
  const reply = await execute(commandLine(words), client, style);
  if (!reply.ok) {
    process.stderr.write(`${reply.text}\n`);
    return EXIT_FAILED;
  }
  if (reply.text !== '') process.stdout.write(`${reply.text}\n`);
  if (reply.stream) await streamUntilInterrupted(client, reply.stream, style);
  return 0;
}

async function piped(client: CaretClient, style: Style): Promise<number> {
  const input = readline.createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  const print = (text: string) => process.stdout.write(`${text}\n`);
  const { failed, streams } = await runLines(input, client, style, print);
  input.close();
  // `SUBSCRIBE ch` piped in keeps printing pushes after the input ends, as redis-cli does.
  for (const request of streams) await streamUntilInterrupted(client, request, style);
  return failed > 0 ? EXIT_FAILED : 0;
}

/** Print pushes until Ctrl+C (SIGINT) or SIGTERM; both then end the process normally. */
async function streamUntilInterrupted(
  client: CaretClient,
  request: Parameters<typeof streamPushes>[1],
  style: Style,
): Promise<void> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  client.once('end', stop);
  try {
    await streamPushes(
      client,
      request,
      (text) => process.stdout.write(`${text}\n`),
      style,
      controller.signal,
    );
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    client.off('end', stop);
  }
}
