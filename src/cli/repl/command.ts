/**
 * `caretkv cli`: a redis-cli for caretkv, in three modes chosen the way redis-cli chooses them.
 *
 *   caretkv cli GET users^42^name        one-shot: print the result, exit 0; or the error, exit 1
 *   caretkv cli < commands.txt            piped: one command per line, replies in order, one line
 *                                         each; exit 1 if any command failed
 *   caretkv cli                           interactive, when stdin is a terminal
 *
 * The server is `--host/--port`, `--url caretkv://host:port`, or a URL as the first argument.
 * The grammar is in parse.ts, printing in format.ts. This file only declares the command: what
 * runs it (connect.ts, with the client and the shell) loads when `cli` is the command, so
 * that `caretkv serve` does not pay for it at start-up.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { DEFAULT_HOST, DEFAULT_PORT } from '../../client/options.js';
import { type CliFlags, PASSWORD_ENV } from './flags.js';

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

/** How to reach and authenticate to a server: shared by `cli` and `backup`. */
export function addConnectionOptions(command: Command, timeoutMs: number): Command {
  return command
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
    .option(
      '--timeout <ms>',
      'how long a command may wait for its reply, 0 for ever',
      milliseconds,
      timeoutMs,
    );
}

export function registerCli(program: Command): void {
  const command = program
    .command('cli')
    .description('interactive shell, one-shot command or piped commands against a caretkv server')
    .argument(
      '[command...]',
      'an action and its arguments to run once (default: a shell, or commands from stdin when it is not a terminal)',
    );
  addConnectionOptions(command, 10_000)
    .option('--json', 'print one line of JSON per result even on a terminal')
    .option('--no-color', 'no colours (as NO_COLOR=1)')
    // Arguments such as `-5` (INCR n -5) are values, not flags.
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText('after', EXAMPLES)
    .action(async (words: string[], flags: CliFlags) => {
      const { runCli } = await import('./connect.js');
      process.exitCode = await runCli(words, flags);
    });
}
