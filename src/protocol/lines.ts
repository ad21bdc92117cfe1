/**
 * Newline framing over Buffers, pull-style: `push()` hands in bytes, `next()` takes out one line at
 * a time. Pulling (rather than a callback per line) lets the caller stop mid-chunk under
 * backpressure and resume later; the unread complete lines stay in the chunk they arrived in, so
 * what is held is bounded by what the socket delivered.
 *
 *   chunks: [ ..line\n..line\n..par ][ tial\n..line\n.. ]      carry: bytes of a line split
 *             ^pos                                               across chunks (copied, bounded)
 *
 * A line that fits in one chunk comes back without a copy of its own. When the chunk is all ASCII
 * (the usual case for JSON requests) the whole chunk is turned into one string, once, and each of
 * its lines is a substring of it: one native call per chunk instead of a Buffer view plus a string
 * conversion per line (measured in bench/handler.ts). Any other chunk yields views into it (UTF-8
 * is the caller's business: a line with a multi-byte character, or invalid bytes, stays bytes).
 * Only a line split across chunks is copied, once, when its newline arrives.
 *
 * A line longer than `maxLineBytes` is never buffered whole: as soon as the carried bytes pass the
 * limit they are dropped, `next()` returns `LINE_TOO_LONG` once, and the rest of that line is
 * skipped up to its newline. The stream then continues normally.
 *
 * Knows nothing of JSON or of the bytes' meaning. `\r\n` is accepted (the `\r` is stripped) and
 * blank lines are skipped.
 */

import { isAscii } from 'node:buffer';

const LF = 0x0a;
const CR = 0x0d;

/** Returned by `next()` once per line that exceeded the limit. */
export const LINE_TOO_LONG: unique symbol = Symbol('LINE_TOO_LONG');
/** A line: a string when its bytes were all ASCII (so bytes and characters agree), else its bytes. */
export type LineResult = string | Buffer | typeof LINE_TOO_LONG | null;

const EMPTY = Buffer.alloc(0);

function checkLimit(maxLineBytes: number): number {
  if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
    throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
  }
  return maxLineBytes;
}

export class LineFramer {
  #maxLineBytes: number;
  /** Unread input; `pos` indexes into `chunks[head]`. A plain array with a moving head: no shifts. */
  private chunks: Buffer[] = [];
  private head = 0;
  private pos = 0;
  /** Start of a line whose end has not arrived yet (copies, so the chunks they came from can go). */
  private carry: Buffer[] = [];
  private carryBytes = 0;
  /** Skipping the remainder of an over-long line up to its newline. */
  private discarding = false;
  /** The chunk `text` was made from, and that chunk as a string (null: not all ASCII). */
  private textOf: Buffer | null = null;
  private text: string | null = null;

  constructor(maxLineBytes: number) {
    this.#maxLineBytes = checkLimit(maxLineBytes);
  }

  get maxLineBytes(): number {
    return this.#maxLineBytes;
  }

  /**
   * A new limit for lines not yet returned (the protocol raises it after AUTH). Only a limit: a
   * line already being carried is judged by the new one when it completes, and one already being
   * discarded stays discarded, so changing it mid-stream never corrupts the line framing.
   */
  set maxLineBytes(limit: number) {
    this.#maxLineBytes = checkLimit(limit);
  }

  push(chunk: Buffer): void {
    if (chunk.length > 0) this.chunks.push(chunk);
  }

  /** True while complete lines may still be waiting in unread input. */
  get hasInput(): boolean {
    return this.head < this.chunks.length;
  }

  /** Bytes received but not yet returned as lines (including a partial line). */
  get bufferedBytes(): number {
    let n = this.carryBytes - this.pos;
    for (let i = this.head; i < this.chunks.length; i++) n += this.chunks[i]!.length;
    return n;
  }

  /** The next complete line (without its terminator), `LINE_TOO_LONG`, or null when none is complete. */
  next(): LineResult {
    const max = this.#maxLineBytes;
    while (this.head < this.chunks.length) {
      const chunk = this.chunks[this.head]!;
      const start = this.pos;
      const nl = chunk.indexOf(LF, start);

      if (nl === -1) {
        this.dropChunk();
        if (this.discarding) continue;
        // One byte of slack: the carried tail may end in the `\r` of a `\r\n` split across chunks.
        if (this.carryBytes + (chunk.length - start) > max + 1) {
          this.clearCarry();
          this.discarding = true;
          return LINE_TOO_LONG;
        }
        // Copy: a view would pin the whole chunk in memory for the sake of its tail.
        const tail = Buffer.allocUnsafe(chunk.length - start);
        chunk.copy(tail, 0, start);
        this.carry.push(tail);
        this.carryBytes += tail.length;
        continue;
      }

      this.pos = nl + 1;
      if (this.pos === chunk.length) this.dropChunk();
      if (this.discarding) {
        this.discarding = false;
        continue;
      }

      let line: Buffer;
      if (this.carryBytes === 0) {
        if (chunk !== this.textOf) {
          this.textOf = chunk;
          this.text = isAscii(chunk) ? chunk.toString('latin1') : null;
        }
        const text = this.text;
        if (text !== null) {
          let end = nl;
          if (end > start && text.charCodeAt(end - 1) === CR) end--;
          if (end === start) continue;
          if (end - start > max) return LINE_TOO_LONG;
          return text.slice(start, end);
        }
        line = chunk.subarray(start, nl);
      } else if (this.carryBytes + (nl - start) > max + 1) {
        this.clearCarry();
        return LINE_TOO_LONG;
      } else {
        this.carry.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.carry, this.carryBytes + (nl - start));
        this.clearCarry();
      }
      let end = line.length;
      if (end > 0 && line[end - 1] === CR) end--;
      if (end === 0) continue;
      if (end > max) return LINE_TOO_LONG;
      return end === line.length ? line : line.subarray(0, end);
    }
    this.forgetText();
    return null;
  }

  /**
   * End of input: the bytes after the last newline, as a final line (or LINE_TOO_LONG / null).
   * Call only after `next()` returned null.
   */
  finish(): LineResult {
    if (this.discarding || this.carryBytes === 0) {
      this.discarding = false;
      this.clearCarry();
      return null;
    }
    const line = this.carry.length === 1 ? this.carry[0]! : Buffer.concat(this.carry, this.carryBytes);
    this.clearCarry();
    let end = line.length;
    if (line[end - 1] === CR) end--;
    if (end === 0) return null;
    if (end > this.#maxLineBytes) return LINE_TOO_LONG;
    return line.subarray(0, end);
  }

  /** Forget everything (the connection is gone). */
  reset(): void {
    this.chunks = [];
    this.head = 0;
    this.pos = 0;
    this.clearCarry();
    this.discarding = false;
    this.forgetText();
  }

  /** The chunk's string outlives the chunk only until input runs dry (it is one chunk at most). */
  private forgetText(): void {
    this.textOf = null;
    this.text = null;
  }

  private dropChunk(): void {
    this.chunks[this.head] = EMPTY;
    this.head++;
    this.pos = 0;
    if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    } else if (this.head >= 64) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  private clearCarry(): void {
    if (this.carryBytes !== 0 || this.carry.length !== 0) {
      this.carry = [];
      this.carryBytes = 0;
    }
  }
}
