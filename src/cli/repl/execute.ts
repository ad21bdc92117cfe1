/**
 * Running lines against a server, the same way in every mode (interactive, one-shot, piped): parse,
 * send through the client library, and turn the outcome into a printable reply. Sending and
 * printing are separate steps so that piped input can pipeline: each line is sent at once and the
 * replies are printed in input order as they arrive.
 */
import type { EventEmitter } from 'node:events';
import type { PushMessage, RawRequest } from '../../client/index.js';
import { CaretError } from '../../client/index.js';
import { formatError, formatPush, formatResult, type Style } from './format.js';
import { helpText } from './help.js';
import { ArgumentError, parseLine } from './parse.js';

/** What the CLI needs of a client: `send` and the `push` / `ready` events (CaretClient fits). */
export interface ClientLike extends Pick<EventEmitter, 'on' | 'off'> {
  send(request: RawRequest): Promise<unknown>;
}

/**
 * Actions after which the CLI keeps printing pushes until Ctrl+C (issue 6: SUBSCRIBE, OBSERVE),
 * and the action that ends them when the user stops. An action listed here that the server does
 * not know yet simply fails with UNKNOWN_ACTION and nothing streams.
 */
export const STREAMING: Readonly<Record<string, string>> = {
  SUBSCRIBE: 'UNSUBSCRIBE',
  OBSERVE: 'UNOBSERVE',
};

export interface Reply {
  readonly ok: boolean;
  /** What to print (empty for nothing). */
  readonly text: string;
  /** The user asked to leave. */
  readonly quit?: true;
  /** A streaming request that succeeded: print pushes until stopped, then send `STREAMING[action]`. */
  readonly stream?: RawRequest;
}

/**
 * Parse `line` and, if it is a request, send it now. Returns the reply (a promise of it for a
 * request), which never rejects: every failure (bad input, a server error, a lost connection)
 * becomes an error reply. Local commands and bad input answer synchronously.
 */
export function execute(line: string, client: ClientLike, style: Style): Reply | Promise<Reply> {
  let parsed: ReturnType<typeof parseLine>;
  try {
    parsed = parseLine(line);
  } catch (err) {
    if (err instanceof ArgumentError) return errorReply(err.code, err.message, style);
    throw err;
  }
  switch (parsed.kind) {
    case 'empty':
      return { ok: true, text: '' };
    case 'local':
      if (parsed.command === 'help') return { ok: true, text: helpText(parsed.args, style) };
      return { ok: true, text: '', quit: true };
    case 'request': {
      const request = parsed.request;
      return client.send(request).then(
        (result): Reply => {
          const streaming = typeof request.action === 'string' && STREAMING[request.action.toUpperCase()];
          return streaming
            ? { ok: true, text: formatResult(result, style), stream: request }
            : { ok: true, text: formatResult(result, style) };
        },
        (err: unknown): Reply => {
          const { code, message } = describeError(err);
          return errorReply(code, message, style);
        },
      );
    }
  }
}

function errorReply(code: string, message: string, style: Style): Reply {
  return { ok: false, text: formatError(code, message, style) };
}

/**
 * The code and the server's own message. CaretError's message is made for logs
 * (`GET users^42^name: no such key [KEY_NOT_FOUND]`); the CLI prints the code first and the
 * request is on the screen already, so both decorations go.
 */
export function describeError(err: unknown): { code: string; message: string } {
  if (!(err instanceof CaretError))
    return { code: 'INTERNAL', message: String((err as Error)?.message ?? err) };
  let message = err.message;
  const prefix = err.action ? `${err.action}${err.key === undefined ? '' : ` ${err.key}`}: ` : '';
  if (prefix !== '' && message.startsWith(prefix)) message = message.slice(prefix.length);
  const suffix = ` [${err.code}]`;
  if (message.endsWith(suffix)) message = message.slice(0, -suffix.length);
  return { code: err.code, message };
}

/** Print every push until `signal` aborts; re-sends `request` after each reconnect (a new connection has no subscriptions). */
export async function streamPushes(
  client: ClientLike,
  request: RawRequest,
  print: (text: string) => void,
  style: Style,
  signal: AbortSignal,
): Promise<void> {
  const onPush = (message: PushMessage) => print(formatPush(message, style));
  const onReady = () => {
    client.send(request).catch((err: unknown) => {
      const { code, message } = describeError(err);
      print(
        formatError(code, `could not renew ${String(request.action)} after reconnecting: ${message}`, style),
      );
    });
  };
  client.on('push', onPush);
  client.on('ready', onReady);
  try {
    if (!signal.aborted) {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    }
  } finally {
    client.off('push', onPush);
    client.off('ready', onReady);
  }
  const undo = STREAMING[String(request.action).toUpperCase()];
  // The stream ends either way; a failed UNSUBSCRIBE only means the connection is already gone.
  if (undo) await client.send({ action: undo }).catch(() => undefined);
}

/** How many piped requests may await their replies at once: bounds memory on huge inputs. */
export const PIPE_WINDOW = 1024;

/**
 * Run lines read from a pipe: send each at once (pipelined), print replies in input order, one
 * line each. Returns how many failed and the streaming requests that succeeded.
 */
export async function runLines(
  lines: AsyncIterable<string>,
  client: ClientLike,
  style: Style,
  print: (text: string) => void,
): Promise<{ failed: number; streams: RawRequest[]; quit: boolean }> {
  const queue: (Reply | Promise<Reply>)[] = [];
  let failed = 0;
  let quit = false;
  const streams: RawRequest[] = [];
  const settle = async () => {
    const reply = await queue.shift()!;
    if (!reply.ok) failed++;
    if (reply.text !== '') print(reply.text);
    if (reply.stream) streams.push(reply.stream);
  };
  for await (const line of lines) {
    const reply = execute(line, client, style);
    queue.push(reply);
    // `quit` is local, so it is known at once: nothing after it is sent.
    if (!(reply instanceof Promise) && reply.quit) {
      quit = true;
      break;
    }
    while (queue.length >= PIPE_WINDOW) await settle();
  }
  while (queue.length > 0) await settle();
  return { failed, streams, quit };
}
