import { Command, CommanderError } from 'commander';
import { CONFIG_KEYS, ConfigError } from '../config.js';
import { packageVersion } from '../version.js';
import { registerBench } from './bench/command.js';
import { registerEcho } from './echo.js';
import { registerLogTools } from './log-tools.js';
import { settingsHelp } from './options.js';
import { registerPasswd } from './passwd.js';
import { CliError } from './process.js';
import { registerCli } from './repl/command.js';
import { registerServe } from './serve.js';

/** Usage errors (bad flag, bad value) exit 2, like most Unix tools; runtime failures exit 1. */
export const EXIT_USAGE = 2;

/** The `caretkv` program. Each subcommand lives in its own file and registers itself here. */
export function buildProgram(): Command {
  const program = new Command('caretkv')
    .description('caretkv: a fast, embeddable key-value server speaking newline-delimited JSON over TCP')
    .version(packageVersion())
    // Throw instead of exiting so main() owns every exit code (and tests can drive the program).
    .exitOverride();
  program.addHelpText(
    'after',
    `${settingsHelp(CONFIG_KEYS)}\nRun \`caretkv <command> --help\` for the flags each command takes.`,
  );
  registerServe(program);
  registerEcho(program);
  registerBench(program);
  registerCli(program);
  registerPasswd(program);
  registerLogTools(program);
  return program;
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its one-line message (or the help / version text).
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
    } else if (err instanceof ConfigError) {
      process.stderr.write(`caretkv: ${err.message}\n`);
      process.exitCode = EXIT_USAGE;
    } else if (err instanceof CliError) {
      process.stderr.write(`caretkv: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      throw err;
    }
  }
}
