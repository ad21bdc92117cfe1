/**
 * The interactive shell: node:readline with persisted history and tab completion. One request at
 * a time; Ctrl+C abandons the one in flight (or a push stream), clears a half-typed line, and on
 * an empty line asks for a second Ctrl+C before leaving, as Node's own REPL does. A lost
 * connection is announced and the client library reconnects in the background.
 */
import type { EventEmitter } from 'node:events';
import readline from 'node:readline';
import { complete } from './complete.js';
import { type ClientLike, execute, type Reply, streamPushes } from './execute.js';
import { formatPush, type Style } from './format.js';
import { HISTORY_MAX, loadHistory, saveHistory } from './history.js';

export interface InteractiveOptions {
  client: ClientLike;
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream & { isTTY?: boolean };
  style: Style;
  /** `host:port`, shown in the prompt. */
  address: string;
  /** History file, or undefined for none. */
  historyFile: string | undefined;
  /** Where a failure to save history is reported (once). */
  warn?: (message: string) => void;
}

const INTERRUPTED = Symbol('interrupted');

export async function runInteractive(options: InteractiveOptions): Promise<void> {
  const { client, input, output, style, address, historyFile } = options;
  const terminal = output.isTTY === true;
  const rl = readline.createInterface({
    input,
    output,
    terminal,
    completer: complete,
    history: loadHistory(historyFile),
    historySize: HISTORY_MAX,
    removeHistoryDuplicates: true,
  });
  let historyBroken = false;
  (rl as unknown as EventEmitter).on('history', (entries: string[]) => {
    if (historyBroken) return;
    try {
      saveHistory(historyFile, entries);
    } catch (err) {
      historyBroken = true;
      options.warn?.(`history not saved to ${historyFile}: ${(err as Error).message}`);
    }
  });

  const connectedPrompt = `${address}> `;
  rl.setPrompt(connectedPrompt);
  let busy: AbortController | undefined;
  let streaming = false;
  let lost = false;
  let exitArmed = false;

  /** Print a line that arrived on its own (push, connection news) without mangling the prompt. */
  const notify = (text: string) => {
    if (busy || !terminal) {
      output.write(`${text}\n`);
      return;
    }
    readline.clearLine(output, 0);
    readline.cursorTo(output, 0);
    output.write(`${text}\n`);
    rl.prompt(true);
  };

  const onClose = () => {
    if (lost) return;
    lost = true;
    rl.setPrompt(`${address} (reconnecting)> `);
    notify(`connection to ${address} lost; reconnecting (commands wait for it, Ctrl+C gives up on one)`);
  };
  const onReady = () => {
    if (!lost) return;
    lost = false;
    rl.setPrompt(connectedPrompt);
    notify(`reconnected to ${address}`);
  };
  const onEnd = () => {
    notify(`connection to ${address} closed for good`);
    rl.close();
  };
  const onPush = (message: { event: string }) => {
    if (!streaming) notify(formatPush(message, style));
  };
  client.on('close', onClose);
  client.on('ready', onReady);
  client.on('end', onEnd);
  client.on('push', onPush);

  rl.on('SIGINT', () => {
    if (busy) {
      busy.abort();
      return;
    }
    if (rl.line !== '') {
      // Ctrl+U: readline's own "delete to line start", so the cursor state stays consistent.
      rl.write(null, { ctrl: true, name: 'u' });
      exitArmed = false;
      return;
    }
    if (exitArmed) {
      rl.close();
      return;
    }
    exitArmed = true;
    output.write('\n(To exit, press Ctrl+C again or Ctrl+D or type quit)\n');
    rl.prompt();
  });

  try {
    rl.prompt();
    for await (const line of rl) {
      exitArmed = false;
      const controller = new AbortController();
      busy = controller;
      const reply = await untilAborted(execute(line, client, style), controller.signal);
      if (reply === INTERRUPTED) {
        output.write('(interrupted: stopped waiting; the request may still run on the server)\n');
      } else {
        if (reply.text !== '') output.write(`${reply.text}\n`);
        if (reply.quit) break;
        if (reply.stream) {
          output.write('Reading pushes... (press Ctrl+C to stop)\n');
          streaming = true;
          await streamPushes(
            client,
            reply.stream,
            (text) => output.write(`${text}\n`),
            style,
            controller.signal,
          );
          streaming = false;
        }
      }
      busy = undefined;
      rl.prompt();
    }
  } finally {
    client.off('close', onClose);
    client.off('ready', onReady);
    client.off('end', onEnd);
    client.off('push', onPush);
    rl.close();
  }
}

function untilAborted(
  reply: Reply | Promise<Reply>,
  signal: AbortSignal,
): Promise<Reply | typeof INTERRUPTED> {
  if (!(reply instanceof Promise)) return Promise.resolve(reply);
  return new Promise((resolve) => {
    const onAbort = () => resolve(INTERRUPTED);
    signal.addEventListener('abort', onAbort, { once: true });
    reply.then((r) => {
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    });
  });
}
