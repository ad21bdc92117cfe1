import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HISTORY_FILE, historyPath, isSecret, loadHistory, saveHistory } from './history.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'caretkv-history-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('history', () => {
  it('lives in the home directory unless CARETKV_HISTFILE moves or disables it', () => {
    const home = () => '/home/ada';
    expect(historyPath({}, home)).toBe(join('/home/ada', HISTORY_FILE));
    expect(historyPath({ CARETKV_HISTFILE: '/tmp/h' }, home)).toBe('/tmp/h');
    expect(historyPath({ CARETKV_HISTFILE: '~/h' }, home)).toBe(join('/home/ada', 'h'));
    expect(historyPath({ CARETKV_HISTFILE: '' }, home)).toBeUndefined();
    expect(historyPath({ CARETKV_HISTFILE: '/dev/null' }, home)).toBeUndefined();
  });

  it('saves oldest first, owner-only, and loads back in readline order (newest first)', () => {
    const file = join(dir, 'h');
    saveHistory(file, ['GET b', 'SET b 2', 'SET a 1']);
    expect(readFileSync(file, 'utf8')).toBe('SET a 1\nSET b 2\nGET b\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadHistory(file)).toEqual(['GET b', 'SET b 2', 'SET a 1']);
  });

  it('is bounded on save and on load', () => {
    const file = join(dir, 'h');
    const newestFirst = Array.from({ length: 30 }, (_, i) => `GET k${29 - i}`);
    saveHistory(file, newestFirst, 10);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toEqual(
      Array.from({ length: 10 }, (_, i) => `GET k${20 + i}`),
    );
    writeFileSync(file, `${Array.from({ length: 30 }, (_, i) => `GET k${i}`).join('\n')}\n\n`);
    expect(loadHistory(file, 5)).toEqual(['GET k29', 'GET k28', 'GET k27', 'GET k26', 'GET k25']);
  });

  it('keeps passwords out of the file', () => {
    expect(isSecret('AUTH ada s3cret')).toBe(true);
    expect(isSecret('  auth ada s3cret')).toBe(true);
    expect(isSecret('{"action":"AUTH","user":"ada","password":"s3cret"}')).toBe(true);
    expect(isSecret('AUTHORS')).toBe(false);
    expect(isSecret('SET password x')).toBe(false);
    const file = join(dir, 'h');
    saveHistory(file, ['GET k', 'AUTH ada s3cret', 'SET k 1']);
    expect(readFileSync(file, 'utf8')).toBe('SET k 1\nGET k\n');
  });

  it('no file, no history; off, nothing is written', () => {
    expect(loadHistory(join(dir, 'missing'))).toEqual([]);
    expect(loadHistory(undefined)).toEqual([]);
    expect(() => saveHistory(undefined, ['GET k'])).not.toThrow();
  });
});
