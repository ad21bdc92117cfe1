/**
 * Reading a log file back: every line's checksum is verified before its record is replayed, and
 * the first bad line ends the replay of that file. What follows the bad line decides what it was:
 * nothing valid after it means a torn tail (a crash or power loss mid-write: the caller may cut
 * it off); a valid record after it means damage in the middle (the caller refuses to go on).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crcOf, decodeBytes, RecordError, type RecordSink } from './records.js';

/** The first line that could not be replayed. */
export interface ScanProblem {
  /** Byte offset of the line's first byte. */
  readonly offset: number;
  readonly reason: string;
  /** Whether a line with a valid checksum follows it (then it is not a torn tail). */
  readonly validAfter: boolean;
}

/**
 * Whether a problem is a torn tail, which may be cut off: only in the file being written (the
 * last one: older files were synced before the writer left them) and with no valid record after it.
 */
export function isTornTail(problem: ScanProblem, inLastFile: boolean): boolean {
  return inLastFile && !problem.validAfter;
}

export interface ScanResult {
  readonly size: number;
  readonly records: number;
  /** Bytes of valid records from the start (the whole file when there is no problem). */
  readonly validBytes: number;
  readonly problem: ScanProblem | null;
}

const CHUNK = 8 << 20;
const NEWLINE = 0x0a;
const SPACE = 0x20;

function hexValue(buf: Buffer, at: number): number {
  let n = 0;
  for (let i = at; i < at + 8; i++) {
    const c = buf[i]!;
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (d === -1) return -1;
    n = n * 16 + d;
  }
  return n;
}

/** Why the line buf[start, end) (without its newline) is not a valid record, or null. */
function lineProblem(buf: Buffer, start: number, end: number): string | null {
  if (end - start < 12 || buf[start + 8] !== SPACE) return 'not a record line';
  const expected = hexValue(buf, start);
  if (expected === -1) return 'not a record line';
  if (crcOf(buf, start + 9, end) !== expected) return 'checksum mismatch';
  return null;
}

/**
 * Replays the file at `path` into `sink` up to its first bad line (see the module comment).
 * Reads in 8 MiB chunks, so a large file costs no more memory than that plus its longest line.
 */
export function scanFile(path: string, sink: RecordSink): ScanResult {
  const fd = openSync(path, 'r');
  try {
    let size = fstatSync(fd).size;
    let buf = Buffer.alloc(Math.min(CHUNK, Math.max(size, 1)));
    let filled = 0; // bytes of buf holding file data
    let base = 0; // file offset of buf[0]
    let records = 0;
    let problem: { offset: number; reason: string } | null = null;
    let validAfter = false;
    for (;;) {
      if (filled < buf.length && base + filled < size) {
        const n = readSync(fd, buf, filled, buf.length - filled, base + filled);
        if (n === 0) size = base + filled; // shrank while we read: what we have is the file
        filled += n;
      }
      const atEof = base + filled >= size;
      let pos = 0;
      for (;;) {
        const nl = buf.indexOf(NEWLINE, pos);
        if (nl === -1 || nl >= filled) break;
        const reason = lineProblem(buf, pos, nl);
        if (problem === null) {
          if (reason === null) {
            try {
              decodeBytes(buf, pos + 9, nl, sink);
              records++;
            } catch (err) {
              if (!(err instanceof RecordError)) throw err;
              problem = { offset: base + pos, reason: `invalid record: ${err.message}` };
              validAfter = true; // its checksum is valid: never a torn tail
            }
          } else {
            problem = { offset: base + pos, reason };
          }
        } else if (reason === null) {
          validAfter = true;
        }
        pos = nl + 1;
      }
      if (atEof) {
        if (pos < filled && problem === null) {
          problem = { offset: base + pos, reason: 'incomplete record (no newline at the end of the file)' };
        }
        const validBytes = problem === null ? size : problem.offset;
        return { size, records, validBytes, problem: problem === null ? null : { ...problem, validAfter } };
      }
      // Keep the partial line; grow the buffer when one line is longer than it.
      buf.copy(buf, 0, pos, filled);
      filled -= pos;
      base += pos;
      if (filled === buf.length) {
        const bigger = Buffer.alloc(buf.length * 2);
        buf.copy(bigger, 0, 0, filled);
        buf = bigger;
      }
    }
  } finally {
    closeSync(fd);
  }
}
