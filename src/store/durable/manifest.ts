/**
 * The manifest: which files make up the log, in replay order. One base file (a snapshot written by
 * a rewrite; empty at first) and one or more incremental files (appended to; the last one is the
 * file being written). Like Redis 7's multi-part AOF, the manifest is the only thing that is ever
 * switched, and it is switched atomically: temp file, fsync, rename, fsync of the directory.
 *
 *   caretkv-log 1
 *   base base.3.log
 *   incr incr.3.log
 *   incr incr.4.log
 *
 * File names carry a sequence number: each rewrite takes the next one for its new incremental file
 * and its base, so the base's number never exceeds an incremental file's and incremental numbers
 * only grow. Anything else is refused with the line that breaks the rule.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';

export const MANIFEST = 'manifest';
const HEADER = 'caretkv-log 1';
const NAME = /^(base|incr)\.([1-9][0-9]{0,15})\.log$/;

export interface Manifest {
  readonly base: string;
  readonly incr: readonly string[];
}

/** A data directory that cannot be used as it is; the message names the file and what is wrong. */
export class LogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LogError';
  }
}

export function seqOf(name: string): number {
  return Number(NAME.exec(name)![2]);
}

export function baseName(seq: number): string {
  return `base.${seq}.log`;
}

export function incrName(seq: number): string {
  return `incr.${seq}.log`;
}

export function formatManifest(m: Manifest): string {
  return `${HEADER}\nbase ${m.base}\n${m.incr.map((name) => `incr ${name}\n`).join('')}`;
}

/** The manifest text's meaning, or a LogError naming the offending line. */
export function parseManifest(text: string, where: string): Manifest {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines[0] !== HEADER) throw new LogError(`${where}: line 1 must be "${HEADER}"`);
  let base: string | undefined;
  const incr: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const at = `${where}: line ${i + 1}`;
    const m = /^(base|incr) (\S+)$/.exec(lines[i]!);
    const name = NAME.exec(m?.[2] ?? '');
    if (m === null || name === null || name[1] !== m[1]) {
      throw new LogError(
        `${at}: expected "base base.N.log" or "incr incr.N.log", got ${JSON.stringify(lines[i])}`,
      );
    }
    const seq = Number(name[2]);
    if (m[1] === 'base') {
      if (base !== undefined) throw new LogError(`${at}: a second base file (${m[2]}); a log has one`);
      if (incr.length > 0) throw new LogError(`${at}: the base file must come before the incremental files`);
      base = m[2]!;
    } else {
      const last = incr.length === 0 ? undefined : seqOf(incr[incr.length - 1]!);
      if (last !== undefined && seq <= last) {
        throw new LogError(`${at}: ${m[2]} is out of sequence (after incr.${last}.log)`);
      }
      if (base !== undefined && seq < seqOf(base)) {
        throw new LogError(`${at}: ${m[2]} is older than the base file ${base}`);
      }
      incr.push(m[2]!);
    }
  }
  if (base === undefined) throw new LogError(`${where}: no base file`);
  if (incr.length === 0) throw new LogError(`${where}: no incremental file`);
  return { base, incr };
}

/** The manifest of `dir`, null when the directory has none (a new data directory). */
export function readManifest(dir: string): Manifest | null {
  const path = join(dir, MANIFEST);
  if (!existsSync(path)) return null;
  const m = parseManifest(readFileSync(path, 'utf8'), path);
  for (const name of [m.base, ...m.incr]) {
    if (!existsSync(join(dir, name)))
      throw new LogError(`${path}: lists ${name}, which is missing from ${dir}`);
  }
  return m;
}

function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Switches the manifest at start-up (blocking is fine: nothing is served yet). */
export function writeManifestSync(dir: string, m: Manifest): void {
  const tmp = join(dir, `${MANIFEST}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    writeFileSync(fd, formatManifest(m));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, MANIFEST));
  fsyncDirSync(dir);
}

/** Switches the manifest while serving: the same steps, off the event loop. */
export async function writeManifest(dir: string, m: Manifest): Promise<void> {
  const tmp = join(dir, `${MANIFEST}.tmp`);
  const file = await open(tmp, 'w');
  try {
    await file.writeFile(formatManifest(m));
    await file.datasync();
  } finally {
    await file.close();
  }
  await rename(tmp, join(dir, MANIFEST));
  await fsyncDir(dir);
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
