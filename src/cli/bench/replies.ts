import type { Target } from './options.js';

/** Error counts by code (caretkv's `error.code`, Redis's error prefix such as `ERR`, `WRONGTYPE`). */
export type ErrorTally = Map<string, number>;

function tally(errors: ErrorTally, code: string): void {
  errors.set(code, (errors.get(code) ?? 0) + 1);
}

/**
 * Counts the replies in a connection's byte stream, one chunk at a time. Chunks split replies
 * anywhere; a counter keeps just enough state to resume. `feed` returns the number of replies
 * the chunk completed (errors included) and adds errors to the tally it was given.
 * The chunk is only read during the call (callers may reuse the buffer afterwards).
 */
export interface ReplyCounter {
  feed(chunk: Buffer, start?: number, end?: number): number;
}

/** Echo: every echoed request line is one reply. */
export class LineCounter implements ReplyCounter {
  feed(chunk: Buffer, start = 0, end = chunk.length): number {
    let n = 0;
    let nl = chunk.indexOf(10, start);
    while (nl !== -1 && nl < end) {
      n++;
      nl = chunk.indexOf(10, nl + 1);
    }
    return n;
  }
}

// `{"ok":t` as bytes: the fixed prefix of every success line the caretkv server writes.
const OK_PREFIX = [0x7b, 0x22, 0x6f, 0x6b, 0x22, 0x3a, 0x74] as const;
/** Protect the generator from a server that never ends a line. */
const MAX_CARRY_BYTES = 64 * 1024 * 1024;

/**
 * caretkv NDJSON responses. A success line is recognised by its first bytes (`{"ok":true`) without
 * decoding it; only other lines (errors, or fields in another order) are parsed, to read the code.
 * Lines with an `event` and no `ok` are server pushes, not replies.
 */
export class NdjsonCounter implements ReplyCounter {
  #carry: Buffer | null = null;

  constructor(private readonly errors: ErrorTally) {}

  feed(chunk: Buffer, start = 0, end = chunk.length): number {
    let n = 0;
    if (this.#carry !== null) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1 || nl >= end) {
        this.#keep(chunk, start, end);
        return 0;
      }
      const line = Buffer.concat([this.#carry, chunk.subarray(start, nl)]);
      this.#carry = null;
      n += this.#line(line, 0, line.length);
      start = nl + 1;
    }
    let nl = chunk.indexOf(10, start);
    while (nl !== -1 && nl < end) {
      n += this.#line(chunk, start, nl);
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < end) this.#keep(chunk, start, end);
    return n;
  }

  #keep(chunk: Buffer, start: number, end: number): void {
    // Copy: the caller may reuse `chunk` for the next read.
    const tail = Buffer.from(chunk.subarray(start, end));
    this.#carry = this.#carry === null ? tail : Buffer.concat([this.#carry, tail]);
    if (this.#carry.length > MAX_CARRY_BYTES) {
      throw new Error(`response line longer than ${MAX_CARRY_BYTES} bytes; is this a caretkv server?`);
    }
  }

  #line(buf: Buffer, start: number, end: number): number {
    if (end > start && buf[end - 1] === 13) end--;
    if (end === start) return 0;
    if (
      end - start >= 10 &&
      buf[start] === OK_PREFIX[0] &&
      buf[start + 1] === OK_PREFIX[1] &&
      buf[start + 2] === OK_PREFIX[2] &&
      buf[start + 3] === OK_PREFIX[3] &&
      buf[start + 4] === OK_PREFIX[4] &&
      buf[start + 5] === OK_PREFIX[5] &&
      buf[start + 6] === OK_PREFIX[6]
    ) {
      return 1;
    }
    return this.#slow(buf.toString('utf8', start, end));
  }

  #slow(text: string): number {
    let reply: unknown;
    try {
      reply = JSON.parse(text);
    } catch {
      tally(this.errors, 'BAD_RESPONSE');
      return 1;
    }
    if (typeof reply !== 'object' || reply === null) {
      tally(this.errors, 'BAD_RESPONSE');
      return 1;
    }
    const r = reply as { ok?: unknown; event?: unknown; error?: { code?: unknown } };
    if (r.ok === true) return 1;
    if (r.ok === false) {
      tally(this.errors, typeof r.error?.code === 'string' ? r.error.code : 'UNKNOWN');
      return 1;
    }
    if (r.event !== undefined) return 0;
    // Not a caretkv response (e.g. `caretkv echo` or another server on the port).
    tally(this.errors, 'BAD_RESPONSE');
    return 1;
  }
}

enum Resp {
  Type = 0,
  Line = 1,
  Bulk = 2,
}

// Line kinds: what to do with the line after the type byte.
const KIND_SIMPLE = 0; // +OK, :1, _, ,1.5, #t, (big number
const KIND_ERROR = 1; // -ERR message
const KIND_BULK = 2; // $n (also =n verbatim, !n blob error)
const KIND_AGGREGATE = 3; // *n (also ~n set, >n push)
const KIND_MAP = 4; // %n (n pairs), |n attribute
const MAX_ERROR_PREFIX = 32;
const MAX_DEPTH = 64;

function kindOf(byte: number): number {
  switch (byte) {
    case 0x2b: // +
    case 0x3a: // :
    case 0x5f: // _
    case 0x2c: // ,
    case 0x23: // #
    case 0x28: // (
      return KIND_SIMPLE;
    case 0x2d: // -
      return KIND_ERROR;
    case 0x24: // $
    case 0x3d: // =
    case 0x21: // !
      return KIND_BULK;
    case 0x2a: // *
    case 0x7e: // ~
    case 0x3e: // >
      return KIND_AGGREGATE;
    case 0x25: // %
      return KIND_MAP;
    default:
      return -1;
  }
}

/**
 * Redis RESP replies (RESP2, and RESP3 types for good measure), parsed incrementally: a reply,
 * a length line or a bulk body may be split across chunks at any byte. Bulk bodies are skipped,
 * not copied; `$-1` / `*-1` nulls are complete replies; `-ERR ...` is counted by its prefix.
 * Aggregates count as one reply when their last element arrives. A RESP3 attribute (`|`) is
 * treated as a map and counted; Redis never sends one unless asked.
 */
export class RespCounter implements ReplyCounter {
  #state: Resp = Resp.Type;
  #kind = 0;
  #number = 0;
  #negative = false;
  #errorPrefix = '';
  #errorPrefixDone = false;
  #blobError = false;
  #bulkLeft = 0;
  readonly #remaining = new Float64Array(MAX_DEPTH);
  #depth = 0;

  constructor(private readonly errors: ErrorTally) {}

  feed(chunk: Buffer, start = 0, end = chunk.length): number {
    let n = 0;
    let i = start;
    while (i < end) {
      switch (this.#state) {
        case Resp.Type: {
          const byte = chunk[i++]!;
          const kind = kindOf(byte);
          if (kind === -1) {
            throw new Error(`unexpected byte 0x${byte.toString(16)} where a RESP reply should start`);
          }
          this.#kind = kind;
          this.#number = 0;
          this.#negative = false;
          this.#blobError = byte === 0x21;
          if (kind === KIND_ERROR) {
            this.#errorPrefix = '';
            this.#errorPrefixDone = false;
          }
          this.#state = Resp.Line;
          break;
        }
        case Resp.Line: {
          if (this.#kind === KIND_SIMPLE) {
            // Nothing to read in the line: jump to its end.
            const nl = chunk.indexOf(10, i);
            if (nl === -1 || nl >= end) {
              i = end;
              break;
            }
            i = nl + 1;
            n += this.#elementDone();
            this.#state = Resp.Type;
            break;
          }
          for (; i < end; i++) {
            const byte = chunk[i]!;
            if (byte === 10) break;
            if (byte === 13) continue;
            if (this.#kind === KIND_ERROR) {
              if (!this.#errorPrefixDone) {
                if (byte === 0x20 || this.#errorPrefix.length >= MAX_ERROR_PREFIX)
                  this.#errorPrefixDone = true;
                else this.#errorPrefix += String.fromCharCode(byte);
              }
            } else if (byte === 0x2d) {
              this.#negative = true;
            } else if (byte >= 0x30 && byte <= 0x39) {
              this.#number = this.#number * 10 + (byte - 0x30);
            } else if (byte !== 0x3f) {
              // `?` is RESP3's streamed length; anything else is not a length.
              throw new Error(`malformed RESP length (byte 0x${byte.toString(16)})`);
            }
          }
          if (i >= end) break;
          i++; // the newline
          this.#state = Resp.Type;
          n += this.#lineDone();
          break;
        }
        case Resp.Bulk: {
          const take = Math.min(this.#bulkLeft, end - i);
          i += take;
          this.#bulkLeft -= take;
          if (this.#bulkLeft === 0) {
            this.#state = Resp.Type;
            if (this.#blobError) tally(this.errors, 'BLOB_ERROR');
            n += this.#elementDone();
          }
          break;
        }
      }
    }
    return n;
  }

  #lineDone(): number {
    const length = this.#negative ? -this.#number : this.#number;
    switch (this.#kind) {
      case KIND_ERROR:
        tally(this.errors, this.#errorPrefix || 'ERR');
        return this.#elementDone();
      case KIND_BULK:
        if (length < 0) return this.#elementDone();
        this.#bulkLeft = length + 2; // body and its CRLF
        this.#state = Resp.Bulk;
        return 0;
      default: {
        const elements = this.#kind === KIND_MAP ? length * 2 : length;
        if (elements <= 0) return this.#elementDone();
        if (this.#depth === MAX_DEPTH) throw new Error(`RESP reply nested deeper than ${MAX_DEPTH}`);
        this.#remaining[this.#depth++] = elements;
        return 0;
      }
    }
  }

  /** An element finished: 1 when it completed a whole top-level reply, 0 when inside an aggregate. */
  #elementDone(): number {
    while (this.#depth > 0) {
      const left = this.#remaining[this.#depth - 1]! - 1;
      this.#remaining[this.#depth - 1] = left;
      if (left > 0) return 0;
      this.#depth--;
    }
    return 1;
  }
}

/** A fresh counter for one connection of a target. */
export function replyCounter(target: Target, errors: ErrorTally): ReplyCounter {
  switch (target) {
    case 'caretkv':
      return new NdjsonCounter(errors);
    case 'echo':
      return new LineCounter();
    case 'redis':
      return new RespCounter(errors);
  }
}
