/**
 * `caretkv check-log DIR [--fix]` and `caretkv backup`: the tools for a server's append-only log
 * (docs/persistence.md).
 */
import type { Command } from 'commander';
import { checkLog } from '../store/durable/check.js';
import { LogError } from '../store/durable/manifest.js';
import { CliError } from './process.js';
import { addConnectionOptions } from './repl/command.js';
import type { CliFlags } from './repl/flags.js';

const EXIT_DAMAGED = 1;

function runCheck(dir: string, fix: boolean): number {
  let report: ReturnType<typeof checkLog>;
  try {
    report = checkLog(dir, { fix });
  } catch (err) {
    if (err instanceof LogError) throw new CliError(`check-log: ${err.message}`, EXIT_DAMAGED);
    throw err;
  }
  if (report.files.length === 0)
    throw new CliError(`check-log: ${dir} holds no manifest: not a data directory`, EXIT_DAMAGED);
  for (const f of report.files) {
    const p = f.problem;
    if (p === null) {
      process.stdout.write(`${f.file}: ok (${f.records} records, ${f.size} bytes)\n`);
    } else if (f.verdict === 'torn') {
      const what = `torn tail at byte ${p.offset} (${p.reason}): ${f.tailBytes} bytes after the last whole record`;
      process.stdout.write(
        `${f.file}: ${what}; ${f.fixed ? 'cut off' : 'run with --fix to cut them off (the server also does at start)'}\n`,
      );
    } else {
      process.stdout.write(
        `${f.file}: damaged at byte ${p.offset} (${p.reason})${p.validAfter ? ', with valid records after it' : ''}: not repairable by cutting the tail; restore a backup\n`,
      );
    }
  }
  process.stdout.write(report.ok ? 'the log is usable\n' : 'the log is NOT usable as it is\n');
  return report.ok ? 0 : EXIT_DAMAGED;
}

export function registerLogTools(program: Command): void {
  program
    .command('check-log')
    .description(
      "verify a data directory's append-only log (checksums, manifest); --fix cuts off a torn tail",
    )
    .argument('<dir>', 'the data directory (--data-dir of the server)')
    .option(
      '--fix',
      'cut off a torn last record (what a crash mid-write leaves); nothing else is changed. Stop the server first',
    )
    .addHelpText(
      'after',
      '\nExit status: 0 when a server would start on the directory, 1 when it would not (damage, or a torn tail without --fix).',
    )
    .action((dir: string, flags: { fix?: boolean }) => {
      process.exitCode = runCheck(dir, flags.fix === true);
    });

  const backup = program
    .command('backup')
    .description(
      'ask a running server (with --data-dir) for a consistent copy of its log; prints the backup directory',
    );
  addConnectionOptions(backup, 600_000)
    .addHelpText(
      'after',
      '\nThe server writes the copy under <data-dir>/backups/. Restore: stop the server, start it with\n--data-dir set to the backup directory (or a copy of it). Needs a user with the admin permission.',
    )
    .action(async (flags: CliFlags) => {
      const { clientOptions, open } = await import('./repl/connect.js');
      const options = clientOptions(flags.url, flags);
      const client = await open(flags.url, options.overrides, `${options.host}:${options.port}`);
      try {
        const result = await client.backup();
        process.stdout.write(
          `${result.dir}\n(${result.files} files, ${result.bytes} bytes; restore: caretkv serve --data-dir ${JSON.stringify(result.dir)})\n`,
        );
      } catch (err) {
        const e = err as { code?: string; message: string };
        throw new CliError(`backup: ${e.code === undefined ? '' : `${e.code} `}${e.message}`, 1);
      } finally {
        client.destroy();
      }
    });
}
