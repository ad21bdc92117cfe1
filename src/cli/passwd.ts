import type { Command } from 'commander';
import { DEFAULT_SCRYPT, hashPassword } from '../auth/password.js';
import { CliError } from './process.js';

/** Longest password accepted (AUTH takes at most 1024 characters). */
const MAX_PASSWORD = 1024;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > 64 * 1024) throw new CliError('passwd: input too long', 2);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * `caretkv passwd`: reads a password from stdin (the first line; never from argv, where `ps` and
 * shell history would show it) and prints its scrypt hash for the config file's `users`.
 */
export function registerPasswd(program: Command): void {
  program
    .command('passwd')
    .description('read a password from stdin and print the scrypt hash to put in the config file')
    .addHelpText(
      'after',
      '\nExample:\n  printf "%s" "$PASSWORD" | caretkv passwd\n  caretkv passwd < secret.txt',
    )
    .action(async () => {
      if (process.stdin.isTTY) process.stderr.write('Password (input is shown; end with Enter and Ctrl+D): ');
      const input = await readStdin();
      // One trailing newline is the terminator, not part of the password (`echo pw | caretkv passwd`).
      const password = input.replace(/\r?\n$/, '');
      if (password === '') throw new CliError('passwd: empty password on stdin', 2);
      if (password.includes('\n')) throw new CliError('passwd: the password must be a single line', 2);
      if (password.length > MAX_PASSWORD)
        throw new CliError(`passwd: longer than ${MAX_PASSWORD} characters`, 2);
      process.stdout.write(`${await hashPassword(password, DEFAULT_SCRYPT)}\n`);
    });
}
