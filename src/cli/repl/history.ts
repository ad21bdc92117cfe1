/**
 * REPL history in a file, as redis-cli keeps ~/.rediscli_history: one entry per line, oldest first,
 * bounded, readable only by its owner (it holds keys and values). CARETKV_HISTFILE moves it; set to
 * an empty string or /dev/null it turns history off (tests use that so they never touch a real home).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const HISTORY_ENV = 'CARETKV_HISTFILE';
export const HISTORY_FILE = '.caretkv_history';
/** Entries kept, in memory and on disk. */
export const HISTORY_MAX = 1000;

/** Where history lives, or undefined when it is off. */
export function historyPath(env: NodeJS.ProcessEnv, home: () => string = homedir): string | undefined {
  const configured = env[HISTORY_ENV];
  if (configured !== undefined) {
    if (configured === '' || configured === '/dev/null') return undefined;
    return configured.startsWith('~/') ? join(home(), configured.slice(2)) : configured;
  }
  return join(home(), HISTORY_FILE);
}

/** The saved history in readline's order (newest first); empty when there is none yet. */
export function loadHistory(path: string | undefined, max = HISTORY_MAX): string[] {
  if (path === undefined) return [];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-max)
    .reverse();
}

/**
 * Write readline's history (newest first) to `path`, oldest first, without secrets. Written to a
 * temporary file and renamed, so a crash mid-write never leaves half a history.
 */
export function saveHistory(
  path: string | undefined,
  newestFirst: readonly string[],
  max = HISTORY_MAX,
): void {
  if (path === undefined) return;
  const lines = newestFirst
    .filter((line) => !isSecret(line))
    .slice(0, max)
    .reverse();
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, lines.length === 0 ? '' : `${lines.join('\n')}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

/** Lines that carry a password stay out of the file (redis-cli does the same for AUTH). */
export function isSecret(line: string): boolean {
  const trimmed = line.trimStart();
  if (/^auth(\s|$)/i.test(trimmed)) return true;
  return trimmed.startsWith('{') && /"password"\s*:/i.test(trimmed);
}
