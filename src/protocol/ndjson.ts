/**
 * The NDJSON codec a connection's pipeline (transport/pipeline.ts) plugs in: one JSON request per
 * line in, one JSON response per line out. It frames lines (lines.ts), decodes and validates each
 * (codec.ts), hands the request to the runner (the command dispatcher, which answers with the
 * encoded response) and keeps the line limit in step with the connection's authentication.
 *
 * Before AUTH, unread input is bounded: past twice the pre-auth line limit queued behind an AUTH
 * being verified, the codec asks the pipeline to stop reading (`holdInput`) until it has caught
 * up; no error, since no line was too long.
 */

import type { Logger } from 'pino';
import { LogLimiter } from '../log.js';
import type { Encoded, RequestCodec } from '../transport/pipeline.js';
import { decode, RequestError, type RequestId } from './codec.js';
import { ERRORS, type ErrorCode } from './errors.js';
import { LINE_TOO_LONG, LineFramer, type LineResult } from './lines.js';
import { NDJSON_PUSHES } from './pushes.js';
import type { Request } from './schema.js';

/** Runs decoded requests (the command dispatcher fits): each answer is an encoded response line. */
export interface RequestRunner<Ctx> {
  run(req: Request, ctx: Ctx): Encoded;
  reject(err: RequestError): string;
  error(id: RequestId | undefined, code: ErrorCode, message: string): string;
}

/** What the codec reads of the connection's authentication (ConnectionAuth fits). */
export interface LineGate {
  /** The line limit now: small until AUTH succeeds. */
  readonly lineLimit: number;
  /** An AUTH is being verified: nothing after it runs until it is answered. */
  readonly busy: boolean;
  readonly authenticated: boolean;
}

export interface NdjsonOptions {
  /** Deepest nesting of a request line (the request object counts as one). */
  readonly maxDepth: number;
  readonly log: Logger;
  /** Called when the connection's output drained and when it closed (the broker, auth). */
  readonly onDrained?: () => void;
  readonly onClosed?: () => void;
}

/** A push (never a response): the server runs nothing more on this connection. */
export const SHUTDOWN_PUSH = NDJSON_PUSHES.shutdown(ERRORS.SHUTTING_DOWN);

function tooLongMessage(limit: number, authenticated: boolean): string {
  return authenticated
    ? `line longer than ${limit} bytes was discarded (raise --max-line-bytes or split the value)`
    : `line longer than ${limit} bytes was discarded: before AUTH the limit is --pre-auth-max-line-bytes`;
}

export class NdjsonCodec<Ctx> implements RequestCodec {
  readonly shutdownNotice = SHUTDOWN_PUSH;
  readonly #framer: LineFramer;
  #lineLimit: number;
  #limiter: LogLimiter | undefined = undefined;

  constructor(
    private readonly runner: RequestRunner<Ctx>,
    private readonly ctx: Ctx,
    private readonly gate: LineGate,
    private readonly options: NdjsonOptions,
  ) {
    this.#lineLimit = gate.lineLimit;
    this.#framer = new LineFramer(this.#lineLimit);
  }

  push(chunk: Buffer): void {
    this.#framer.push(chunk);
  }

  get hasInput(): boolean {
    return this.#framer.hasInput;
  }

  get blocked(): boolean {
    return this.gate.busy;
  }

  get holdInput(): boolean {
    // Before AUTH an unauthenticated client must not make the server hold more than a few lines.
    return !this.gate.authenticated && this.#framer.bufferedBytes > 2 * this.#lineLimit;
  }

  next(): Encoded | null {
    this.#syncLimit();
    const line = this.#framer.next();
    return line === null ? null : this.#handle(line);
  }

  finish(): Encoded | null {
    const last = this.#framer.finish();
    return last === null ? null : this.#handle(last);
  }

  drained(): void {
    this.options.onDrained?.();
  }

  closed(): void {
    this.options.onClosed?.();
    this.#framer.reset();
    this.#limiter?.flush();
  }

  fault(err: unknown): string {
    this.options.log.error({ err }, 'response failed');
    return this.runner.error(undefined, 'INTERNAL', ERRORS.INTERNAL);
  }

  /** AUTH succeeded (or a reload took it away): the framer's limit follows. Only a limit, so
   * raising or lowering it mid-stream never corrupts a line already being carried. */
  #syncLimit(): void {
    const limit = this.gate.lineLimit;
    if (limit === this.#lineLimit) return;
    this.#lineLimit = limit;
    this.#framer.maxLineBytes = limit;
  }

  #handle(line: Exclude<LineResult, null>): Encoded {
    if (line === LINE_TOO_LONG) {
      this.#badRequest('LINE_TOO_LONG', undefined);
      return this.runner.error(
        undefined,
        'LINE_TOO_LONG',
        tooLongMessage(this.#lineLimit, this.gate.authenticated),
      );
    }
    const req = decode(line, this.options.maxDepth);
    if (req instanceof RequestError) {
      this.#badRequest(req.code, req.id);
      return this.runner.reject(req);
    }
    return this.runner.run(req, this.ctx);
  }

  /** One sampled debug line per bad request: a client sending garbage cannot flood the log. */
  #badRequest(code: string, id: RequestId | undefined): void {
    const log = this.options.log;
    if (!log.isLevelEnabled('debug')) return;
    this.#limiter ??= new LogLimiter(log);
    this.#limiter.log('debug', { code, id }, 'bad request');
  }
}
