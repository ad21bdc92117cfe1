/**
 * `caretkv check-log`: verifies a data directory the way start-up would, without loading it, and
 * with `fix` cuts off a torn tail (the only damage that is safe to repair by removing bytes: the
 * record being written when the process or the machine stopped, never acknowledged with `always`).
 */
import { truncateSync } from 'node:fs';
import { join } from 'node:path';
import { readManifest } from './manifest.js';
import type { RecordSink } from './records.js';
import { isTornTail, type ScanProblem, scanFile } from './scan.js';

export interface FileCheck {
  readonly file: string;
  readonly size: number;
  readonly records: number;
  /** ok; torn: a bad tail on the file being written (fixable); damaged: anything else. */
  readonly verdict: 'ok' | 'torn' | 'damaged';
  readonly problem: ScanProblem | null;
  /** Bytes after the last whole record (torn) */
  readonly tailBytes: number;
  /** True when `fix` cut the torn tail off. */
  readonly fixed: boolean;
}

export interface LogCheck {
  readonly files: readonly FileCheck[];
  /** Whether a server would start on the directory as it is now (after any fix). */
  readonly ok: boolean;
}

const NOTHING: RecordSink = { set() {}, del() {}, drop() {}, mset() {}, expire() {}, persist() {} };

/** Throws LogError when the manifest itself is unusable (missing, malformed, naming missing files). */
export function checkLog(dir: string, { fix = false } = {}): LogCheck {
  const manifest = readManifest(dir);
  if (manifest === null) return { files: [], ok: false };
  const names = [manifest.base, ...manifest.incr];
  const files = names.map((name, i): FileCheck => {
    const file = join(dir, name);
    const scan = scanFile(file, NOTHING);
    const problem = scan.problem;
    const torn = problem !== null && isTornTail(problem, i === names.length - 1);
    const verdict = problem === null ? 'ok' : torn ? 'torn' : 'damaged';
    const tailBytes = problem === null ? 0 : scan.size - scan.validBytes;
    return { file, size: scan.size, records: scan.records, verdict, problem, tailBytes, fixed: false };
  });
  const damaged = files.some((f) => f.verdict === 'damaged');
  const result = files.map((f) => {
    if (!fix || damaged || f.verdict !== 'torn') return f;
    truncateSync(f.file, f.size - f.tailBytes);
    return { ...f, fixed: true };
  });
  return { files: result, ok: result.every((f) => f.verdict === 'ok' || f.fixed) };
}
