/**
 * What `caretkv cli` does once its flags are parsed (command.ts declares them): connect, then run one
 * command, the commands piped in, or the interactive shell.
 */
import { readFileSync } from 'node:fs';
import readline from 'node:readline';
import { type CaretClient, CaretError, type ClientOptions, connect } from '../../client/index.js';
import { resolveOptions } from '../../client/options.js';
import { CliError } from '../process.js';
import { describeError, execute, runLines, streamPushes } from './execute.js';
import { type CliFlags, PASSWORD_ENV } from './flags.js';
import { colorWanted, MACHINE, type Style } from './format.js';
import { historyPath } from './history.js';
import { runInteractive } from './interactive.js';

/** Exit status when a command failed (one-shot) or any piped command failed; also for no connection. */
export const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

export async function runCli(words: string[], flags: CliFlags): Promise<number> {
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
export function clientOptions(
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
export async function open(
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
