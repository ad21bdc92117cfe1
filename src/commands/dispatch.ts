/**
 * The dispatcher: one validated request in, one response line out (or a promise of one).
 * Generic work happens here, once, for every command: counting, running the handler, mapping
 * failures to protocol errors, encoding. Handlers never repeat it.
 *
 * Synchronous handlers (the in-memory store) cost no promise and no closure; a handler that
 * returns a promise gets one `.then` and the caller keeps the response's place in line.
 */
import type { Logger } from 'pino';
import { encodeError, encodeResult, type RequestError, type RequestId } from '../protocol/codec.js';
import { ERRORS, type ErrorCode, ProtocolError } from '../protocol/errors.js';
import type { Request } from '../protocol/schema.js';
import { Fail, isThenable } from '../result.js';
import { StoreError } from '../store/store.js';
import type { Command, CommandContext, CommandTable, ProtocolStats } from './table.js';

export function createStats(table: CommandTable): ProtocolStats {
  const errors = {} as Record<ErrorCode, number>;
  for (const code of Object.keys(ERRORS) as ErrorCode[]) errors[code] = 0;
  return { calls: table.list.map(() => 0), errors };
}

export class Dispatcher {
  constructor(
    readonly table: CommandTable,
    readonly stats: ProtocolStats,
  ) {}

  /** Runs a request that passed `decode()`. The promise, when there is one, never rejects. */
  run(req: Request, ctx: CommandContext): string | Promise<string> {
    const command = this.table.byName.get(req.action);
    if (command === undefined) {
      // decode() only passes actions with a schema, and buildTable() gives every schema a command.
      return this.error(req.id, 'UNKNOWN_ACTION', `unknown action ${JSON.stringify(req.action)}`);
    }
    this.stats.calls[command.index]!++;
    // One property read on an open server (and for a user allowed everything); see src/auth.
    const restricted = ctx.auth.restricted;
    if (restricted) {
      const denied = ctx.auth.authorize(command, req);
      if (denied !== undefined) return this.error(req.id, denied.code, denied.message);
    }
    let result: unknown;
    try {
      result = (command.handler as (r: Request, c: CommandContext) => unknown)(req, ctx);
    } catch (err) {
      return this.failure(req.id, err, command, ctx.log);
    }
    if (isThenable(result)) {
      const id = req.id;
      return result.then(
        (value) => this.complete(id, command, value),
        (err: unknown) => this.failure(id, err, command, ctx.log),
      );
    }
    return this.complete(req.id, command, result);
  }

  /** An error line, counted. */
  error(id: RequestId | undefined, code: ErrorCode, message: string): string {
    this.stats.errors[code]++;
    return encodeError(id, code, message);
  }

  /** The error line for a request that failed to decode. */
  reject(err: RequestError): string {
    return this.error(err.id, err.code, err.message);
  }

  private complete(id: RequestId | undefined, command: Command, result: unknown): string {
    if (result instanceof Fail) return this.error(id, result.code, result.message);
    return encodeResult(id, command.result, result);
  }

  private failure(id: RequestId | undefined, err: unknown, command: Command, log: Logger): string {
    if (err instanceof ProtocolError) return this.error(id, err.code, err.message);
    if (err instanceof StoreError) return this.error(id, err.code, err.message);
    // Not the client's doing: log it with its stack; the connection carries on.
    log.error({ err, action: command.name }, 'command failed');
    return this.error(id, 'INTERNAL', ERRORS.INTERNAL);
  }
}
